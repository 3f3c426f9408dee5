/* main.c — vigild: the lifecycle in one visible order.
 *   1. options and configuration: the file and flags parsed, then every module's plan prepared
 *      (plan.c), the validation --check-config also runs
 *   2. logging
 *   3. the start steps (steps[]: data dir, store, backend, cache, sampler, health, security,
 *      HTTP, listeners, sampling), then run until a signal (SIGHUP and POST
 *      /api/v1/config/reload reload: all or nothing, restart-only keys reported as pending)
 *   4. the steps stopped in reverse order. */
#include <errno.h>
#include <malloc.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef VIGIL_HAVE_SYSTEMD
#include "common/sd_dl.h"
#endif

#include "api/api.h"
#include "api/counters.h"
#include "backend/backend.h"
#include "cache/cache.h"
#include "common/fileio.h"
#include "diag/service.h"
#include "common/log.h"
#include "common/macros.h"
#include "common/vtime.h"
#include "config.h"
#include "health/gpuconfig.h"
#include "health/health.h"
#include "observe.h"
#include "security.h"
#include "sampler/sampler.h"
#include "plan.h"
#include "store/backup.h"
#include "store/crypto.h"
#include "store/s3.h"
#include "store/service.h"
#include "store/store.h"
#include "takeover.h"
#include "workload/workload.h"
#include "workload/jobs.h"

#define DEFAULT_CONFIG "/etc/vigil/vigil.yaml"

static void notify(const char *state)
{
#ifdef VIGIL_HAVE_SYSTEMD
        sd_dl_notify(state);
#else
        (void)state;
#endif
}

/* systemd watchdog: ping every half period, but only while the fast tier makes progress, so a
 * sampler that hangs stops the pings and systemd restarts us. Progress is a finished sweep, or a
 * hung call given up (health.nvml_call_timeout): a hang on every GPU is given up one GPU after
 * another, and with many GPUs that takes longer than WatchdogSec while the tier is not stuck. */
static void watchdog_ping(sampler *en, int64_t wd_us, int64_t *last_ping_us)
{
        sampler_stats st;
        int64_t now = time_mono_us(), age, stale;

        if (wd_us <= 0 || (*last_ping_us >= 0 && now - *last_ping_us < wd_us / 2))
                return;
        sampler_get_stats(en, &st);
        age = time_real_us() -
              MAX(st.tier[TIER_FAST].last_sweep_us, st.tier[TIER_FAST].last_abandon_us);
        stale = MAX(3 * st.tier[TIER_FAST].interval_us, wd_us / 2);
        if (st.tier[TIER_FAST].sweeps == 0 || age > stale) {
                if (*last_ping_us >= 0) /* once per stall */
                        log_warn("vigild",
                                 "sampler stalled: no fast sweep finished and no hung call "
                                 "given up for %.1fs, withholding the watchdog ping",
                                 (double)age / USEC_PER_SEC);
                *last_ping_us = -1;
                return;
        }
        *last_ping_us = now;
        notify("WATCHDOG=1");
}

typedef struct daemon_state {
        vigil_config cfg;         /* effective configuration */
        pthread_mutex_t cfg_lock; /* cfg is read by HTTP threads for /api/v1/status */
        const char *config_path;  /* NULL when running on defaults */
        api *api;
        store *store;            /* DATA_DIR/vigil.db; opened before the backend, closed last */
        crypto_keyring *keyring; /* when security.encryption.encryption_key is set */
        backup_service *backup;  /* backups, schedule, key rotation */
        diag_service *diag;      /* diagnostic runs (vigil diag, POST /api/v1/diag) */
        workload *workload;      /* processes per GPU and owners; NULL when workload.enabled off */
        jobs *jobs;              /* job statistics (vigil job, /api/v1/jobs) */
        health *health;          /* health rules, incidents, alerts; NULL until set up */
        gpuconfig *gpucfg;       /* GPU settings: set/restore, config.enforce; NULL until set up */
        auth_gate *gate;         /* security gate (security.c) */
        tls_ctx *tls;            /* HTTPS context, NULL when security.tls is off */
        anomaly *anomaly;        /* anomaly detection (observe.c); NULL when off */
        sampler *en;             /* borrowed for anomaly_eval in on_sweep */
        cache *ca;               /* borrowed for anomaly_eval in on_sweep */
        const struct cli_overrides *o; /* command-line flags, applied again on each reload */
        json_t *pending;               /* restart-only keys whose new value waits for a restart:
                                          {"path": new value}; under cfg_lock */
        char tls_key[1024];            /* TLS settings running (security_plan.tls_key) */
        /* POST /api/v1/config/reload hands the reload to the main thread and waits for it */
        pthread_mutex_t rl_lock;
        pthread_cond_t rl_cond;
        int rl_fd;          /* eventfd the main loop polls */
        bool rl_busy;       /* a request is waiting for the main thread */
        bool rl_closed;     /* the main loop has ended: no reload will be served */
        uint64_t rl_seq;    /* reloads answered so far */
        json_t *rl_result;  /* outcome of the last requested reload, taken by the requester */
        unsigned rl_status; /* its HTTP status */

        /* what the start steps build, in the order of steps[] */
        config_plan plan;             /* the start's prepared modules; released after the start */
        backend_options bopt;         /* NVML library, simulated or not */
        backend *be;                  /* the only door to the GPUs */
        struct counter_set *counters; /* metrics.counters_csv; must outlive the api */
        char hostname[256];           /* hostname label */
        char addr_file[PATH_MAX];     /* DATA_DIR/vigild.addr */
        char url[256];                /* the bound TCP listener, "" when none */
        char exe[PATH_MAX];           /* this binary, for a successor on SIGUSR2 */
        char *const *argv;            /* our arguments, for a successor */
        sampler_field_interval overrides[256]; /* collection.fields for sampler_new */
        api_label labels[64];                  /* metrics.extra_labels for api_new */
        takeover *tk;                          /* our takeover control socket */
        char tk_path[PATH_MAX];                /* DATA_DIR/takeover.sock */
        int tk_conn, tk_tcp, tk_unix; /* from the vigild we replace (--takeover); -1 = none */
        int tk_lock;                  /* its data-directory lock (--takeover); -1 = none */
        int lock_fd;                  /* DATA_DIR/vigild.lock, flock'ed; -1 = not held */
        bool sampler_started;         /* sweeps started early (takeover) or by step "sampling" */
        bool handed_over;             /* a successor serves our sockets now */
} daemon_state;

/* Step "store", durable state: the keyring, the store (restoring the newest good backup if the database
 * is corrupt and backup.restore_on_corrupt), then the backup service. Logs what it did. */
static int open_store(daemon_state *d)
{
        char db[PATH_MAX], dir[PATH_MAX], kpath[PATH_MAX], err[1024] = "", host[256] = "";
        const struct vigil_config *c = &d->cfg;
        store_open_info info = {0};
        int r;

        snprintf(db, sizeof(db), "%s/vigil.db", c->data_dir);
        snprintf(kpath, sizeof(kpath), "%s/keyring", c->data_dir);
        if (c->backup.dir && c->backup.dir[0])
                snprintf(dir, sizeof(dir), "%s", c->backup.dir);
        else
                snprintf(dir, sizeof(dir), "%s/backups", c->data_dir);
        if (c->encryption.data_at_rest && !c->encryption.encryption_key[0]) {
                log_error("store", "security.encryption.data_at_rest is true but no "
                                   "encryption_key is set (e.g. \"${VIGIL_ENCRYPTION_KEY}\")");
                return -EINVAL;
        }
        if (c->encryption.encryption_key[0]) {
                r = crypto_keyring_new(c->encryption.encryption_key, &d->keyring, err, sizeof(err));
                if (r == 0) {
                        r = crypto_keyring_load(d->keyring, kpath, err, sizeof(err));
                        if (r == -ENOENT)
                                r = crypto_keyring_save(d->keyring, kpath, err, sizeof(err));
                }
                if (r < 0) {
                        log_error("store", "refusing to start, nothing was changed: %s", err);
                        return r;
                }
                log_info("store", "encryption at rest: data key %u active, master key %08x",
                         crypto_keyring_active(d->keyring), crypto_keyring_master_id(d->keyring));
        }
        store_options so = {.path = db,
                            .integrity_check = true,
                            .keyring = d->keyring,
                            .seal = c->encryption.data_at_rest};
        r = store_open(&so, &d->store, &info, err, sizeof(err));
        if (r < 0) {
                log_error("store", "%s", err);
                return r;
        }
        if (info.moved_corrupt) {
                log_error("store", "the store '%s' was corrupt: moved aside to '%s'", db,
                          info.corrupt_path);
                bool restored = false;
                backup_entry *v = NULL;
                size_t n = 0;
                if (c->backup.restore_on_corrupt &&
                    backup_list(dir, &v, &n, err, sizeof(err)) == 0 && n > 0) {
                        d->store = store_close(d->store);
                        for (size_t i = 0; i < n && i < 5 && !restored; i++) {
                                /* Never an archive anyone who can write the backup directory
                                 * could have planted: with encryption configured only one the
                                 * master key made, and none from the future (it would always
                                 * be the newest). */
                                int64_t now = time_real_us();
                                restore_options ro = {.archive = v[i].path,
                                                      .data_dir = c->data_dir,
                                                      .keyring = d->keyring,
                                                      .check = true,
                                                      .encrypted_only = d->keyring != NULL,
                                                      .not_after_us = now + 300 * USEC_PER_SEC};
                                if (v[i].time_us > ro.not_after_us) {
                                        log_error("store",
                                                  "not restoring '%s': its name dates it in "
                                                  "the future",
                                                  v[i].path);
                                        continue;
                                }
                                restore_result rr;
                                r = backup_restore(&ro, &rr, err, sizeof(err));
                                if (r == 0) {
                                        restored = true;
                                        log_warn("store",
                                                 "restored the newest good backup "
                                                 "'%s' (created %s)",
                                                 v[i].path, rr.info.created);
                                } else {
                                        log_error("store", "cannot restore '%s': %s", v[i].path,
                                                  err);
                                }
                        }
                        r = store_open(&so, &d->store, &info, err, sizeof(err));
                        if (r < 0) {
                                free(v);
                                log_error("store", "%s", err);
                                return r;
                        }
                }
                free(v);
                if (!restored)
                        log_warn("store", "starting with an EMPTY store (%s)",
                                 c->backup.restore_on_corrupt ? "no backup could be restored"
                                                              : "backup.restore_on_corrupt: false");
                char detail[PATH_MAX + 64];
                snprintf(detail, sizeof(detail), "corrupt database moved aside to '%s'",
                         info.corrupt_path);
                (void)store_event(d->store, "corrupt", detail);
        } else if (info.created) {
                log_info("store", "created the store '%s' (schema v%d)", db, info.schema_version);
        } else if (info.previous_version != info.schema_version) {
                log_info("store", "migrated the store '%s' from v%d to v%d", db,
                         info.previous_version, info.schema_version);
        } else {
                log_info("store", "opened the store '%s' (schema v%d)", db, info.schema_version);
        }

        if (c->metrics.hostname && c->metrics.hostname[0])
                snprintf(host, sizeof(host), "%s", c->metrics.hostname);
        else
                gethostname(host, sizeof(host) - 1);
        int64_t sched = 0;
        if (c->backup.schedule[0])
                time_parse_duration(c->backup.schedule, &sched);
        backup_service_config bc = {
            .dir = dir,
            .data_dir = c->data_dir,
            .config_file = d->config_path,
            .hostname = host,
            .schedule_us = sched,
            .keep_count = c->backup.keep_count,
            .keep_max_age_us = c->backup.keep_max_age_us,
            .hook = c->backup.hook,
            .hook_timeout_us = c->backup.hook_timeout_us,
            .compression = (enum backup_compression)c->backup.compression,
            .key_rotation_days = c->encryption.key_rotation_days,
        };
        s3_target s3 = {
            .endpoint = c->backup.s3.endpoint,
            .bucket = c->backup.s3.bucket,
            .prefix = c->backup.s3.prefix,
            .region = c->backup.s3.region,
            .virtual_host = c->backup.s3.addressing == 1,
            .credentials_file = c->backup.s3.credentials_file,
            .timeout_us = c->backup.s3.timeout_us,
        };
        if (c->backup.s3.bucket && c->backup.s3.bucket[0]) {
                bc.s3 = &s3;
                bc.s3_keep_count = c->backup.s3.keep_count;
                bc.s3_keep_max_age_us = c->backup.s3.keep_max_age_us;
                bc.s3_retry_max_us = c->backup.s3.retry_max_us;
        }
        err[0] = 0;
        r = backup_service_new(&bc, d->store, d->keyring, &d->backup, err, sizeof(err));
        if (r == 0)
                r = backup_service_start(d->backup);
        if (r < 0) {
                log_error("store", "failed to start the backup service: %s",
                          err[0] ? err : strerror(-r));
                return r;
        }
        if (bc.s3)
                log_info("backup", "archives are copied to s3://%s/%s (%s)", s3.bucket, s3.prefix,
                         s3.endpoint && s3.endpoint[0] ? s3.endpoint : "AWS");
        if (!d->keyring)
                log_info("backup",
                         "backups go to '%s'%s, NOT encrypted (no "
                         "security.encryption.encryption_key)",
                         dir, sched ? "" : " on request only");
        return 0;
}

static void on_sweep(void *userdata, enum field_tier tier)
{
        daemon_state *d = userdata;

        health_on_sweep(d->health, tier);
        workload_on_sweep(d->workload, tier);
        gpuconfig_on_sweep(d->gpucfg, tier);
        jobs_on_sweep(d->jobs, tier);
        if (tier == TIER_FAST)
                anomaly_eval(d->anomaly, d->en, d->ca); /* before the render: fresh gauges */
        else if (tier == TIER_SLOW)
                anomaly_maybe_save(d->anomaly);
        api_render(d->api);
}

static void on_event(void *userdata, unsigned gpu, unsigned kind, uint64_t data, int64_t ts_us)
{
        daemon_state *d = userdata;

        health_on_event(d->health, gpu, kind, data, ts_us);
}

static json_t *config_json(void *userdata)
{
        daemon_state *d = userdata;
        json_t *j;

        pthread_mutex_lock(&d->cfg_lock);
        j = config_to_json(&d->cfg);
        /* what runs, and apart the values that wait for a restart */
        if (j && d->pending && json_object_size(d->pending))
                json_object_set_new(j, "pending_restart", json_deep_copy(d->pending));
        pthread_mutex_unlock(&d->cfg_lock);
        return j ? j : json_null();
}

static void usage(FILE *f)
{
        fprintf(
            f,
            "usage: vigild [OPTIONS]\n"
            "\n"
            "Vigil GPU host engine: samples GPUs through NVML, serves Prometheus /metrics and a\n"
            "REST API.\n"
            "\n"
            "  -c, --config FILE         configuration file (default %s if present)\n"
            "  -l, --listen ADDR:PORT    HTTP listen address (default 0.0.0.0:5555; port 0 picks "
            "one)\n"
            "  -s, --socket PATH         unix socket for the API (\"\" disables)\n"
            "  -d, --data-dir DIR        state directory (default /var/lib/vigil)\n"
            "      --simulate[=SCENARIO] simulated GPUs from the fake NVML (default scenario:\n"
            "                            8 H200s replaying a recorded trace)\n"
            "      --nvml-lib PATH       NVML library to load (default libnvidia-ml.so.1)\n"
            "      --collectors FILE     export the fields of a dcgm-exporter counters CSV with\n"
            "                            dcgm-exporter's names and labels (metrics.counters_csv)\n"
            "      --log-format text|json\n"
            "      --log-level debug|info|warn|error\n"
            "      --check-config FILE   validate FILE and exit (0 valid, 1 invalid)\n"
            "      --takeover PATH       take the listening sockets over from the vigild whose\n"
            "                            control socket is PATH (zero-downtime upgrade)\n"
            "      --web-config-file FILE  exporter-toolkit web-config.yml: TLS, basic auth,\n"
            "                            headers (security.web_config_file)\n"
            "  -h, --help                this help\n"
            "  -V, --version             print the version\n",
            DEFAULT_CONFIG);
}

enum {
        OPT_SIMULATE = 256,
        OPT_NVML_LIB,
        OPT_LOG_FORMAT,
        OPT_LOG_LEVEL,
        OPT_CHECK_CONFIG,
        OPT_COLLECTORS,
        OPT_TAKEOVER,
        OPT_WEB_CONFIG,
};

typedef struct cli_overrides {
        const char *config, *listen, *socket, *data_dir, *nvml_lib, *log_format, *log_level;
        const char *check_config;
        const char *collectors; /* dcgm-exporter counters CSV */
        const char *takeover;   /* control socket of the vigild we replace */
        const char *web_config; /* exporter-toolkit web-config.yml */
        bool simulate;
        const char *scenario;
} cli_overrides;

static int parse_args(int argc, char **argv, cli_overrides *o)
{
        static const struct option opts[] = {
            {"config", required_argument, NULL, 'c'},
            {"listen", required_argument, NULL, 'l'},
            {"socket", required_argument, NULL, 's'},
            {"data-dir", required_argument, NULL, 'd'},
            {"simulate", optional_argument, NULL, OPT_SIMULATE},
            {"nvml-lib", required_argument, NULL, OPT_NVML_LIB},
            {"log-format", required_argument, NULL, OPT_LOG_FORMAT},
            {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
            {"check-config", required_argument, NULL, OPT_CHECK_CONFIG},
            {"collectors", required_argument, NULL, OPT_COLLECTORS},
            {"takeover", required_argument, NULL, OPT_TAKEOVER},
            {"web-config-file", required_argument, NULL, OPT_WEB_CONFIG},
            {"help", no_argument, NULL, 'h'},
            {"version", no_argument, NULL, 'V'},
            {NULL, 0, NULL, 0},
        };
        int c;

        while ((c = getopt_long(argc, argv, "c:l:s:d:hV", opts, NULL)) != -1) {
                switch (c) {
                case 'c':
                        o->config = optarg;
                        break;
                case 'l':
                        o->listen = optarg;
                        break;
                case 's':
                        o->socket = optarg;
                        break;
                case 'd':
                        o->data_dir = optarg;
                        break;
                case OPT_SIMULATE:
                        o->simulate = true;
                        o->scenario = optarg;
                        break;
                case OPT_NVML_LIB:
                        o->nvml_lib = optarg;
                        break;
                case OPT_LOG_FORMAT:
                        o->log_format = optarg;
                        break;
                case OPT_LOG_LEVEL:
                        o->log_level = optarg;
                        break;
                case OPT_CHECK_CONFIG:
                        o->check_config = optarg;
                        break;
                case OPT_COLLECTORS:
                        o->collectors = optarg;
                        break;
                case OPT_TAKEOVER:
                        o->takeover = optarg;
                        break;
                case OPT_WEB_CONFIG:
                        o->web_config = optarg;
                        break;
                case 'h':
                        usage(stdout);
                        exit(0);
                case 'V':
                        printf("vigild %s\n", VIGIL_VERSION);
                        exit(0);
                default:
                        usage(stderr);
                        return -EINVAL;
                }
        }
        if (optind < argc) {
                fprintf(stderr, "vigild: unexpected argument '%s'\n", argv[optind]);
                return -EINVAL;
        }
        return 0;
}

static int replace_str(char **dst, const char *src)
{
        char *n = strdup(src);

        if (!n)
                return -ENOMEM;
        free(*dst);
        *dst = n;
        return 0;
}

/* Command-line flags win over the file. */
static int apply_overrides(vigil_config *c, const cli_overrides *o, char *err, size_t errlen)
{
        int r = 0;

        if (o->listen) {
                char host[256];
                unsigned port;
                if (config_parse_listen(o->listen, host, sizeof(host), &port) < 0) {
                        snprintf(err, errlen, "--listen: cannot parse '%s': expected ADDR:PORT",
                                 o->listen);
                        return -EINVAL;
                }
                r = r ?: replace_str(&c->listen, o->listen);
        }
        if (o->socket)
                r = r ?: replace_str(&c->socket, o->socket);
        if (o->data_dir)
                r = r ?: replace_str(&c->data_dir, o->data_dir);
        if (o->nvml_lib)
                r = r ?: replace_str(&c->nvml.library, o->nvml_lib);
        if (o->collectors)
                r = r ?: replace_str(&c->metrics.counters_csv, o->collectors);
        if (o->web_config)
                r = r ?: replace_str(&c->security.web_config_file, o->web_config);
        if (o->simulate) {
                c->simulate.enabled = true;
                if (o->scenario)
                        r = r ?: replace_str(&c->simulate.scenario, o->scenario);
        }
        if (o->log_format) {
                int f = log_format_from_string(o->log_format);
                if (f < 0) {
                        snprintf(err, errlen, "--log-format: '%s' is not text or json",
                                 o->log_format);
                        return -EINVAL;
                }
                c->logging.format = f;
        }
        if (o->log_level) {
                int l = log_level_from_string(o->log_level);
                if (l < 0) {
                        snprintf(err, errlen, "--log-level: '%s' is not debug, info, warn or error",
                                 o->log_level);
                        return -EINVAL;
                }
                c->logging.level = l;
        }
        return r;
}

static int load_config(const cli_overrides *o, vigil_config *c, const char **path, char *err,
                       size_t errlen)
{
        int r;

        config_init(c);
        *path = o->config;
        if (!*path && access(DEFAULT_CONFIG, F_OK) == 0)
                *path = DEFAULT_CONFIG;
        if (*path) {
                r = config_load(*path, c, err, errlen);
                if (r < 0)
                        return r;
        }
        return apply_overrides(c, o, err, errlen);
}

/* A refused reload: logged, audited, answered; nothing changed. */
static json_t *reload_refused(daemon_state *d, const char *err, unsigned *status)
{
        log_error("config", "failed to reload the configuration, keeping the running one: %s", err);
        if (d->gate)
                gate_audit(d->gate, "vigild", "admin", "local", "-", "config", 400, "config_reload",
                           err, "");
        *status = 400;
        return json_pack("{s:b,s:{s:i,s:s}}", "reloaded", false, "error", "code", 400, "message",
                         err);
}

static json_t *str_array(const char *const *v, size_t n)
{
        json_t *a = json_array();

        for (size_t i = 0; a && i < n; i++)
                json_array_append_new(a, json_string(v[i]));
        return a;
}

static void join(char *b, size_t len, const char *const *v, size_t n)
{
        size_t at = 0;

        b[0] = '\0';
        for (size_t i = 0; i < n && at < len; i++) {
                int w = snprintf(b + at, len - at, "%s%s", i ? ", " : "", v[i]);
                if (w < 0)
                        break;
                at += (size_t)w;
        }
}

#define MAX_KEYS 256 /* more than the table has */

/* SIGHUP and POST /api/v1/config/reload: all or nothing. Parse and validate the whole file and
 * prepare every module's new state; on any refusal nothing changes. Then apply every reloadable
 * key to the running modules and report the restart-only keys that changed as pending: they keep
 * their running values (GET /api/v1/config shows what runs) until the next start. Returns the
 * API answer; *status is its HTTP status. */
static json_t *reload(daemon_state *d, unsigned *status)
{
        vigil_config next;
        config_plan plan;
        const char *path, *applied[MAX_KEYS], *pending[MAX_KEYS];
        char err[1024] = "", line[2048];
        size_t n_applied, n_pending;
        json_t *pend, *res;
        int r;

        notify("RELOADING=1");
        r = load_config(d->o, &next, &path, err, sizeof(err));
        if (r == 0)
                r = plan_prepare(&next, d->cfg.simulate.enabled, d->tls != NULL, &plan, err,
                                 sizeof(err));
        if (r < 0) {
                config_release(&next);
                notify("READY=1");
                return reload_refused(d, err, status);
        }
        /* TLS settings (certificate, key, CA, client auth, versions, headers) of either source
         * apply now (prepared in plan.sec.tls_next); only switching TLS on or off needs a
         * restart, since the listener is built with or without it. */
        bool tls_changed = plan.sec.tls != (d->tls != NULL);

        /* commit: the only steps that can still fail (a certificate whose contents broke, a log
         * file) come first, so a failure leaves everything as it ran */
        if (d->gate) {
                r = security_commit(&plan.sec, d->store, d->gate, d->tls, err, sizeof(err));
                if (r < 0) {
                        plan_release(&plan);
                        config_release(&next);
                        notify("READY=1");
                        return reload_refused(d, err, status);
                }
        }
        /* checked by plan_prepare; only a race (the directory removed since) fails here */
        bool log_failed = log_configure(&plan.log, err, sizeof(err)) < 0;
        if (log_failed)
                log_error("config", "keeping the running log sinks and logging settings: %s", err);
        if (d->api) {
                size_t nl = MIN(next.metrics.n_extra_labels, ARRAY_SIZE(d->labels));
                api_label labels[ARRAY_SIZE(d->labels)];
                for (size_t i = 0; i < nl; i++)
                        labels[i] = (api_label){next.metrics.extra_labels[i].name,
                                                next.metrics.extra_labels[i].value};
                r = api_set_metrics(d->api, plan.counters,
                                    next.metrics.naming == METRICS_NAMING_DCGM || plan.counters,
                                    labels, nl);
                if (r < 0) {
                        log_error("config", "failed to apply the metrics settings: %s",
                                  strerror(-r));
                } else { /* the api no longer reads the old set */
                        counters_free(d->counters);
                        d->counters = TAKE_PTR(plan.counters);
                }
        }
        if (d->diag)
                diag_service_configure(d->diag, &next.diag);
        if (d->gpucfg &&
            (next.n_gpu_enforce != d->cfg.n_gpu_enforce ||
             (next.n_gpu_enforce && memcmp(next.gpu_enforce, d->cfg.gpu_enforce,
                                           next.n_gpu_enforce * sizeof(*next.gpu_enforce)) != 0))) {
                r = gpuconfig_set_enforce(d->gpucfg, next.gpu_enforce, next.n_gpu_enforce);
                if (r < 0)
                        log_error("config", "failed to apply config.enforce: %s", strerror(-r));
                else
                        log_info("config", "config.enforce: %zu entries, enforcing",
                                 next.n_gpu_enforce);
        }
        if (d->health) {
                r = health_reconfigure(d->health, &plan.health);
                if (r < 0) /* out of memory or threads only: the old health settings stay */
                        log_error("config", "failed to apply the health and alerting settings: %s",
                                  strerror(-r));
        }

        if (d->jobs)
                jobs_set_limits(d->jobs, next.jobs.grace_us, next.jobs.retention_us);

        pthread_mutex_lock(&d->cfg_lock);
        if (log_failed)
                config_keep_module(&next, &d->cfg, CONFIG_MOD_LOG);
        n_applied = config_changed_reloadable(&next, &d->cfg, applied, MAX_KEYS);
        /* After this, next holds what runs; d->cfg holds the new values that wait. */
        n_pending = config_keep_restart(&next, &d->cfg, pending, MAX_KEYS);
        n_applied = MIN(n_applied, (size_t)MAX_KEYS);
        n_pending = MIN(n_pending, (size_t)MAX_KEYS);
        pend = json_object();
        for (size_t i = 0; pend && i < config_key_count(); i++) {
                config_key_info ki;
                config_key_info_at(i, &ki);
                for (size_t k = 0; k < n_pending; k++)
                        if (!strcmp(pending[k], ki.path))
                                json_object_set_new(pend, ki.path, config_key_json(i, &d->cfg));
        }
        if (pend && tls_changed && !json_object_get(pend, "security.web_config_file") &&
            next.security.web_config_file[0])
                json_object_set_new(pend, "security.web_config_file",
                                    json_string(next.security.web_config_file));
        config_release(&d->cfg);
        d->cfg = next;
        json_decref(d->pending);
        d->pending = pend;
        res = json_pack("{s:b,s:o,s:o}", "reloaded", true, "applied", str_array(applied, n_applied),
                        "pending_restart", json_array());
        if (res && pend) {
                const char *k;
                json_t *v;
                json_object_foreach(pend, k, v)
                    json_array_append_new(json_object_get(res, "pending_restart"), json_string(k));
        }
        pthread_mutex_unlock(&d->cfg_lock);
        if (!tls_changed)
                snprintf(d->tls_key, sizeof(d->tls_key), "%s", plan.sec.tls_key);
        plan_release(&plan);

        join(line, sizeof(line), applied, n_applied);
        log_info("config", "reloaded the configuration from '%s'; applied: %s",
                 path ? path : "(defaults)", n_applied ? line : "no change");
        if (res && json_array_size(json_object_get(res, "pending_restart"))) {
                const char *names[MAX_KEYS];
                json_t *a = json_object_get(res, "pending_restart");
                size_t n = MIN(json_array_size(a), (size_t)MAX_KEYS);
                for (size_t i = 0; i < n; i++)
                        names[i] = json_string_value(json_array_get(a, i));
                join(line, sizeof(line), names, n);
                log_warn("config", "changed but pending until restart (running values kept): %s",
                         line);
        }
        if (d->gate)
                gate_audit(d->gate, "vigild", "admin", "local", "-", "config", 200, "config_reload",
                           n_pending || tls_changed ? "pending restart" : "", "");
        notify("READY=1");
        *status = 200;
        return res;
}

/* HTTP thread: ask the main thread for a reload and wait for its answer (at most 60 s). */
static json_t *config_reload_request(void *userdata, unsigned *status)
{
        daemon_state *d = userdata;
        struct timespec until;
        uint64_t one = 1, seq;
        json_t *res = NULL;

        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 60;
        pthread_mutex_lock(&d->rl_lock);
        while (d->rl_busy && !d->rl_closed)
                if (pthread_cond_timedwait(&d->rl_cond, &d->rl_lock, &until) == ETIMEDOUT)
                        goto out;
        if (d->rl_closed)
                goto out;
        d->rl_busy = true;
        seq = d->rl_seq;
        if (write(d->rl_fd, &one, sizeof(one)) != sizeof(one)) {
                d->rl_busy = false;
                goto out;
        }
        while (d->rl_seq == seq && !d->rl_closed)
                if (pthread_cond_timedwait(&d->rl_cond, &d->rl_lock, &until) == ETIMEDOUT)
                        break;
        if (d->rl_seq != seq) {
                res = d->rl_result;
                *status = d->rl_status;
                d->rl_result = NULL;
        }
        d->rl_busy = false;
        pthread_cond_broadcast(&d->rl_cond);
out:
        pthread_mutex_unlock(&d->rl_lock);
        return res;
}

/* Main thread, when the loop ended: a reload request still waiting is answered 503 at once. */
static void reloads_close(daemon_state *d)
{
        pthread_mutex_lock(&d->rl_lock);
        d->rl_closed = true;
        pthread_cond_broadcast(&d->rl_cond);
        pthread_mutex_unlock(&d->rl_lock);
}

/* Main thread: answer a requested reload. */
static void config_reload_serve(daemon_state *d)
{
        uint64_t n;
        unsigned status = 500;
        json_t *res;

        if (read(d->rl_fd, &n, sizeof(n)) != sizeof(n))
                return;
        log_reopen();
        res = reload(d, &status);
        pthread_mutex_lock(&d->rl_lock);
        json_decref(d->rl_result);
        d->rl_result = res;
        d->rl_status = status;
        d->rl_seq++;
        pthread_cond_broadcast(&d->rl_cond);
        pthread_mutex_unlock(&d->rl_lock);
}

/* ---- the lifecycle: start steps in order, stopped in reverse ------------------------------- */

/* Each start logs its own failure (the message names what failed) and returns 0 or -errno; its
 * stop undoes it, in reverse order, also after a failed start of the same step (so a stop takes
 * NULL and half-built state). */
typedef struct step {
        const char *name;
        int (*start)(daemon_state *d);
        void (*stop)(daemon_state *d);
} step;

/* One vigild per data directory: an flock on DATA_DIR/vigild.lock, taken before anything else
 * is written there, held until exit, with the holder's pid inside for the refusal message. A
 * successor (--takeover) receives the lock of the vigild it replaces with the listeners: the
 * flock belongs to the open file they share, so it is never free in between. */
static int data_dir_lock(daemon_state *d)
{
        char path[PATH_MAX], pid[32] = "", text[32];
        struct stat a, b;
        int fd, n;

        snprintf(path, sizeof(path), "%s/vigild.lock", d->cfg.data_dir);
        if (d->tk_lock >= 0) {
                /* only the lock of this very file counts (the same data directory) */
                if (fstat(d->tk_lock, &a) == 0 && stat(path, &b) == 0 && a.st_dev == b.st_dev &&
                    a.st_ino == b.st_ino) {
                        d->lock_fd = d->tk_lock;
                        d->tk_lock = -1;
                        goto write_pid;
                }
                log_warn("vigild", "the lock handed over is not '%s': taking it here", path);
                close(d->tk_lock);
                d->tk_lock = -1;
        }
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640);
        if (fd < 0) {
                log_error("vigild", "failed to open the lock '%s': %s", path, strerror(errno));
                return -errno;
        }
        if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
                int e = errno;
                n = (int)pread(fd, pid, sizeof(pid) - 1, 0);
                pid[n > 0 ? n : 0] = '\0';
                pid[strcspn(pid, "\n")] = '\0';
                close(fd);
                if (e != EWOULDBLOCK) {
                        log_error("vigild", "failed to lock '%s': %s", path, strerror(e));
                        return -e;
                }
                log_error("vigild",
                          "data directory '%s' is in use by vigild pid %s (lock '%s'): one vigild "
                          "per data directory; use another storage.data_dir, or --takeover to "
                          "replace it",
                          d->cfg.data_dir, pid[0] ? pid : "?", path);
                return -EBUSY;
        }
        d->lock_fd = fd;
write_pid:
        n = snprintf(text, sizeof(text), "%d\n", (int)getpid());
        if (ftruncate(d->lock_fd, 0) < 0 || pwrite(d->lock_fd, text, (size_t)n, 0) != n)
                log_warn("vigild", "failed to write our pid into '%s': %s", path, strerror(errno));
        return 0;
}

static int S_data_dir(daemon_state *d)
{
        int r = mkdir_p(d->cfg.data_dir, 0750, 0750);

        if (r < 0) {
                log_error("vigild", "failed to create data directory '%s': %s", d->cfg.data_dir,
                          strerror(-r));
                return r;
        }
        snprintf(d->addr_file, sizeof(d->addr_file), "%s/vigild.addr", d->cfg.data_dir);
        snprintf(d->tk_path, sizeof(d->tk_path), "%s/takeover.sock", d->cfg.data_dir);
        return data_dir_lock(d);
}

static void T_data_dir(daemon_state *d)
{
        /* closed last (this step stops last): the lock outlives every file written */
        if (d->lock_fd >= 0)
                close(d->lock_fd);
        d->lock_fd = -1;
}

static int S_socket_dir(daemon_state *d)
{
        const char *sock = d->cfg.socket, *slash = strrchr(sock, '/');
        char dir[PATH_MAX];
        int r;

        if (!sock[0] || !slash || slash == sock)
                return 0;
        /* /run/vigil is a tmpfs directory that systemd's RuntimeDirectory= creates; when started
         * by hand, create it rather than refuse to start. */
        snprintf(dir, sizeof(dir), "%.*s", (int)(slash - sock), sock);
        r = mkdir_p(dir, 0750, 0750);
        if (r < 0)
                log_warn("vigild", "failed to create socket directory '%s': %s", dir, strerror(-r));
        return 0;
}

static void T_store(daemon_state *d)
{
        d->backup = backup_service_free(d->backup); /* durable state goes last */
        d->store = store_close(d->store);
        d->keyring = crypto_keyring_free(d->keyring);
}

static int S_backend(daemon_state *d)
{
        char err[1024] = "";
        unsigned n = 0;
        int r;

        d->bopt.library = d->cfg.nvml.library;
        d->bopt.simulate = d->cfg.simulate.enabled;
        d->bopt.scenario = d->cfg.simulate.scenario[0] ? d->cfg.simulate.scenario : NULL;
        r = backend_open(&d->bopt, &d->be, err, sizeof(err));
        if (r < 0) {
                if (d->bopt.simulate)
                        log_error("vigild", "failed to start the simulated GPUs: %s", err);
                else
                        log_error("vigild",
                                  "no usable GPU: %s. Run with --simulate to use simulated GPUs",
                                  err);
                return r;
        }
        backend_device_count(d->be, &n);
        if (d->bopt.simulate)
                log_warn("vigild",
                         "SIMULATED GPUs: %u GPUs from scenario '%s' (fake NVML '%s'); "
                         "no real GPU is read",
                         n, d->bopt.scenario ? d->bopt.scenario : "built-in default",
                         backend_library(d->be));
        else if (n == 0)
                log_warn("vigild", "NVML reports no GPU on this node");
        else
                log_info("vigild", "found %u GPUs through '%s'", n, backend_library(d->be));
        return 0;
}

static void T_backend(daemon_state *d)
{
        d->be = backend_close(d->be);
}

static int S_cache(daemon_state *d)
{
        int r = cache_new(sampler_max_gpus(), &d->ca);

        if (r < 0)
                log_error("vigild", "failed to create the cache: %s", strerror(-r));
        return r;
}

static void T_cache(daemon_state *d)
{
        d->ca = cache_free(d->ca);
}

static int S_sampler(daemon_state *d)
{
        const vigil_config *c = &d->cfg;
        sampler_options eo = {
            .backend = d->be,
            .cache = d->ca,
            .fast_us = c->collection.fast_us,
            .slow_us = c->collection.slow_us,
            .overrides = d->overrides,
            .n_overrides = MIN(c->collection.n_fields, ARRAY_SIZE(d->overrides)),
            .keep_max_age_us = c->collection.max_age_us,
            .keep_max_samples = c->collection.max_samples,
            .adaptive = {c->collection.adaptive_enabled, c->collection.adaptive_max_share,
                         c->collection.adaptive_max_stretch},
            .on_sweep = on_sweep,
            .on_event = on_event,
            .userdata = d,
            .profiling_all = c->collection.profiling == 1,
        };
        int r;

        for (size_t i = 0; i < eo.n_overrides; i++) {
                d->overrides[i].field_id = c->collection.fields[i].field_id;
                d->overrides[i].interval_us = c->collection.fields[i].interval_us;
        }
        r = sampler_new(&eo, &d->en);
        if (r < 0)
                log_error("vigild", "failed to set up sampling: %s", strerror(-r));
        return r;
}

static void T_sampler(daemon_state *d)
{
        d->en = sampler_free(d->en);
}

static int S_anomaly(daemon_state *d)
{
        d->anomaly = observe_anomaly_new(&d->cfg); /* NULL when off or failed (logged) */
        return 0;
}

static void T_anomaly(daemon_state *d)
{
        d->anomaly = anomaly_free(d->anomaly);
}

/* Automatic jobs (workload/jobs.h) from the processes the workload reader attributed: a Slurm
 * job or a pod seen on a GPU starts or extends its job; every process is recorded in the jobs
 * running on that GPU. On the workload reader thread. */
static void on_workload_read(void *userdata, unsigned gpu, const workload_process *procs, size_t n,
                             int64_t ts_us)
{
        daemon_state *d = userdata;

        for (size_t i = 0; d->jobs && i < n; i++) {
                const workload_owner *o = &procs[i].owner;
                const char *kind = o->kind == WL_OWNER_SLURM ? "slurm"
                                   : o->kind == WL_OWNER_POD ? "pod"
                                                             : NULL;

                if (kind && !o->id[0])
                        kind = NULL;
                if (kind && jobs_observe(d->jobs, gpu, kind, o->id, ts_us) < 0)
                        kind = NULL; /* an id jobs cannot take: recorded without an owner */
                jobs_process_seen(d->jobs, gpu, procs[i].p.pid, kind, kind ? o->id : NULL);
        }
}

/* Step "workload": the reader of processes per GPU (its thread waits for the slow sweeps). Started
 * after "jobs", so it is stopped (its thread joined) before the jobs it feeds are freed. */
static int S_workload(daemon_state *d)
{
        const workload_config *c = &d->cfg.workload;
        int r;

        if (!c->enabled)
                return 0;
        r = workload_new(&(workload_options){.backend = d->be,
                                             .sampler = d->en,
                                             .proc_root = c->proc_root,
                                             .interval_us = c->interval_us,
                                             .max_processes = c->max_processes,
                                             .kubernetes = c->kubernetes,
                                             .kubelet_socket = c->kubelet_socket,
                                             .kubelet_timeout_us = c->kubelet_timeout_us,
                                             .container_logs_dir = c->container_logs_dir,
                                             .pod_labels = c->pod_labels,
                                             .pod_label_allowlist = c->pod_label_allowlist,
                                             .kube_api_url = c->kube_api_url,
                                             .kube_token_file = c->kube_token_file,
                                             .kube_ca_file = c->kube_ca_file,
                                             .pod_labels_refresh_us = c->pod_labels_refresh_us,
                                             .on_read = on_workload_read,
                                             .userdata = d},
                         &d->workload);
        if (r == 0)
                r = workload_start(d->workload);
        if (r < 0) {
                log_error("workload", "failed to start reading processes per GPU: %s",
                          strerror(-r));
                return r;
        }
        log_info("workload", "reading processes per GPU %s; owners from '%s'",
                 c->interval_us ? "on workload.interval" : "after each slow sweep", c->proc_root);
        return 0;
}

static void T_workload(daemon_state *d)
{
        d->workload = workload_free(d->workload); /* after the sweeps and HTTP that use it */
}

static int S_counters(daemon_state *d)
{
        if (d->cfg.metrics.hostname && d->cfg.metrics.hostname[0])
                snprintf(d->hostname, sizeof(d->hostname), "%s", d->cfg.metrics.hostname);
        else
                gethostname(d->hostname, sizeof(d->hostname) - 1);
        if (!d->plan.counters)
                return 0;
        d->counters = TAKE_PTR(d->plan.counters); /* read at start (plan.c); outlives the api */
        counters_log(d->counters, d->cfg.metrics.counters_csv);
        return 0;
}

static void T_counters(daemon_state *d)
{
        d->counters = counters_free(d->counters);
}

static int S_takeover_connect(daemon_state *d)
{
        char err[1024] = "";
        int r;

        if (realpath("/proc/self/exe", d->exe) == NULL)
                snprintf(d->exe, sizeof(d->exe), "%s", d->argv[0]);
        if (!d->o->takeover)
                return 0;
        r = takeover_connect(d->o->takeover, &d->tk_conn, &d->tk_tcp, &d->tk_unix, &d->tk_lock, err,
                             sizeof(err));
        if (r < 0)
                log_error("takeover", "%s", err);
        return r;
}

static void T_takeover_connect(daemon_state *d)
{
        if (d->tk_conn >= 0)
                close(d->tk_conn);
        if (d->tk_tcp >= 0)
                close(d->tk_tcp);
        if (d->tk_unix >= 0)
                close(d->tk_unix);
        if (d->tk_lock >= 0)
                close(d->tk_lock);
        d->tk_conn = d->tk_tcp = d->tk_unix = d->tk_lock = -1;
}

/* diagnostics: the worker runs on the same NVML (or fake) as the daemon. Before health (its
 * diag policy action starts runs) and the api; freed after both. */
static int S_diag(daemon_state *d)
{
        int r = diag_service_new(&(diag_service_opts){.nvml_lib = d->bopt.library,
                                                      .simulate = d->bopt.simulate,
                                                      .scenario = d->bopt.scenario,
                                                      .store = d->store,
                                                      .config = &d->cfg.diag},
                                 &d->diag);

        if (r < 0)
                log_error("vigild", "failed to set up diagnostics: %s", strerror(-r));
        return r;
}

static void T_diag(daemon_state *d)
{
        d->diag = diag_service_free(d->diag); /* after the HTTP threads and the policy worker */
}

/* The diag policy action (health_options.diag): health does not see the diag module. */
static int policy_diag(void *userdata, int level, int gpu, uint64_t incident, const char *condition,
                       char *id, size_t idlen, char *err, size_t errlen)
{
        daemon_state *d = userdata;
        char origin[128];
        json_t *body = json_pack("{s:i}", "level", level);
        int r;

        if (!body)
                return -ENOMEM;
        if (gpu >= 0)
                json_object_set_new(body, "gpus", json_pack("[i]", gpu));
        snprintf(origin, sizeof(origin), "policy: incident %llu (%s)", (unsigned long long)incident,
                 condition);
        r = diag_service_start_from(d->diag, body, origin, id, idlen, err, errlen);
        json_decref(body);
        return r;
}

/* health: rules, incidents (reloaded from the store), alerts, policies */
static int S_health(daemon_state *d)
{
        health_options ho = {.diag = policy_diag,
                             .diag_userdata = d,
                             .sampler = d->en,
                             .cache = d->ca,
                             .backend = d->be,
                             .store = d->store,
                             .data_dir = d->cfg.data_dir,
                             .hostname = d->hostname,
                             .cfg = &d->plan.health};
        int r = health_new(&ho, &d->health);

        if (r < 0) {
                log_error("vigild", "failed to set up the health engine: %s", strerror(-r));
                return r;
        }
        health_watch_anomalies(d->health, d->anomaly); /* an anomaly that opens is an incident */
        r = health_start(d->health);
        if (r < 0)
                log_error("vigild", "failed to start the health engine: %s", strerror(-r));
        return r;
}

static void T_health(daemon_state *d)
{
        d->health = health_free(d->health); /* after the sweeps stopped: no hook runs any more */
}

/* Enforcement changes are audited like the API's, as vigild itself. Worker thread. */
static void gpucfg_audit(void *userdata, const char *event, const char *detail)
{
        daemon_state *d = userdata;

        gate_audit(d->gate, "vigild", "admin", "local", "-", "config.enforce", 200, event, detail,
                   NULL);
}

/* GPU configuration: the worker behind vigil config set/restore and config.enforce (enforced
 * once now; after the security step so that its changes are audited) */
static int S_gpuconfig(daemon_state *d)
{
        gpuconfig_options go = {.backend = d->be,
                                .sampler = d->en,
                                .store = d->store,
                                .enforce = d->cfg.gpu_enforce,
                                .n_enforce = d->cfg.n_gpu_enforce,
                                .audit = gpucfg_audit,
                                .userdata = d};
        int r = gpuconfig_new(&go, &d->gpucfg);

        if (r < 0) {
                log_error("vigild", "failed to set up GPU configuration: %s", strerror(-r));
                return r;
        }
        r = gpuconfig_start(d->gpucfg);
        if (r < 0)
                log_error("vigild", "failed to start GPU configuration: %s", strerror(-r));
        return r;
}

static void T_gpuconfig(daemon_state *d)
{
        d->gpucfg = gpuconfig_free(d->gpucfg); /* after the sweeps and the HTTP threads */
}

static int S_security(daemon_state *d)
{
        char err[1024] = "";
        int r;

        /* The audit key and the exported head live in the data directory; with encryption the
         * key is sealed by the master key. */
        d->plan.sec.gate.audit_dir = d->cfg.data_dir;
        d->plan.sec.gate.keyring = d->keyring;
        r = security_start(&d->plan.sec, &d->cfg, d->store, &d->gate, &d->tls, err, sizeof(err));

        if (r < 0)
                log_error("vigild", "failed to set up security: %s", err);
        snprintf(d->tls_key, sizeof(d->tls_key), "%s", d->plan.sec.tls_key);
        return r;
}

static void T_security(daemon_state *d)
{
        d->gate = gate_free(d->gate);
        d->tls = tls_free(d->tls);
}

static int S_api(daemon_state *d)
{
        const vigil_config *c = &d->cfg;
        size_t nl = MIN(c->metrics.n_extra_labels, ARRAY_SIZE(d->labels));
        api_options ao = {
            .sampler = d->en,
            .cache = d->ca,
            .backend = d->be,
            .health = d->health,
            .listen = c->listen,
            .socket_path = c->socket,
            .addr_file = d->addr_file,
            .hostname = d->hostname,
            .extra_labels = d->labels,
            .n_extra_labels = nl,
            .dcgm_naming = c->metrics.naming == METRICS_NAMING_DCGM || d->counters,
            .dcgm_host_label = c->metrics.dcgm_compat == DCGM_COMPAT_MAIN ? "hostname" : "Hostname",
            .counters = d->counters,
            .threads = c->http.threads,
            .max_connections = c->http.max_connections,
            .max_per_ip = c->http.max_connections_per_ip,
            .timeout_s = (unsigned)(c->http.connection_timeout_us / USEC_PER_SEC),
            .max_body = c->http.max_request_body,
            .simulated = d->bopt.simulate,
            .anomaly = d->anomaly,
            .gate = d->gate,
            .tls = d->tls,
            .config_json = config_json,
            .config_reload = config_reload_request,
            .userdata = d,
            .store = d->store,
            .backup = d->backup,
            .workload = d->workload,
            .workload_pod_labels = c->workload.kubernetes,
            .workload_pod_uid = c->workload.kubernetes && c->workload.pod_uid_label,
            .workload_hpc_job = c->workload.slurm,
            .workload_process_metrics = c->workload.process_metrics,
            .workload_max_series = c->workload.max_process_series,
            .inherit_tcp_fd = d->tk_tcp >= 0 ? d->tk_tcp : 0,
            .inherit_unix_fd = d->tk_unix >= 0 ? d->tk_unix : 0,
        };
        int r;

        for (size_t i = 0; i < nl; i++) {
                d->labels[i].name = c->metrics.extra_labels[i].name;
                d->labels[i].value = c->metrics.extra_labels[i].value;
        }
        ao.diag = d->diag;
        ao.gpuconfig = d->gpucfg;
        ao.jobs = d->jobs;
        d->tk_tcp = d->tk_unix = -1; /* the api owns them now */
        r = api_new(&ao, &d->api);
        if (r < 0)
                log_error("vigild", "failed to set up HTTP: %s", strerror(-r));
        return r;
}

static void T_api(daemon_state *d)
{
        d->api = api_free(d->api);
}

/* Taking over: serve the inherited sockets only once our first sweep is done. Its stop stops
 * the sweeps however they were started, before anything they call into is freed. */
static int S_sweeps_early(daemon_state *d)
{
        int r;

        if (d->tk_conn < 0)
                return 0;
        r = sampler_start(d->en);
        if (r < 0) {
                log_error("vigild", "failed to start sampling: %s", strerror(-r));
                return r;
        }
        d->sampler_started = true;
        for (int64_t t0 = time_mono_us(); !sampler_ready(d->en); usleep(10000))
                if (time_mono_us() - t0 > 60 * USEC_PER_SEC) {
                        log_error("takeover", "not ready after 60s: leaving the running vigild "
                                              "in place");
                        return -ETIMEDOUT;
                }
        return 0;
}

static void T_sweeps(daemon_state *d)
{
        sampler_stop(d->en);
        if (d->anomaly)
                anomaly_save(d->anomaly); /* baselines survive the restart */
}

static int S_listen(daemon_state *d)
{
        char err[1024] = "";
        int r = api_start(d->api, d->url, sizeof(d->url), err, sizeof(err));

        if (r < 0)
                log_error("vigild", "%s", err);
        return r;
}

static void T_listen(daemon_state *d)
{
        if (d->handed_over)
                api_handed_over(d->api);
        api_stop(d->api);
}

static int S_takeover(daemon_state *d)
{
        int r;

        if (d->tk_conn >= 0) {
                r = takeover_confirm(d->tk_conn, 5000);
                d->tk_conn = -1;
                if (r < 0)
                        log_warn("takeover", "the previous vigild did not confirm the handover: %s",
                                 strerror(-r));
                else
                        log_info("takeover", "took over the listeners from '%s'", d->o->takeover);
        }
        r = takeover_listen(d->tk_path, &d->tk);
        takeover_set_lock(d->tk, d->lock_fd);
        if (r < 0)
                log_warn("takeover", "failed to listen on '%s', upgrades will not be seamless: %s",
                         d->tk_path, strerror(-r));
        if (d->url[0])
                log_info("vigild", "listening on %s", d->url);
        if (d->cfg.socket[0])
                log_info("vigild", "listening on unix:%s", d->cfg.socket);
        if (d->gate) {
                char line[512];
                gate_describe(d->gate, d->url, d->cfg.socket, d->tls != NULL, line, sizeof(line));
                log_info("security", "%s", line);
        }
        return 0;
}

static void T_takeover(daemon_state *d)
{
        d->tk = takeover_free(d->tk);
}

static int S_sampling(daemon_state *d)
{
        int r;

        if (d->sampler_started)
                return 0;
        r = sampler_start(d->en);
        if (r < 0)
                log_error("vigild", "failed to start sampling: %s", strerror(-r));
        else
                d->sampler_started = true;
        return r;
}

/* Job statistics: after the sampler (it reads its readings) and the store (running jobs are
 * resumed from it); stopped after the sweeps and the HTTP threads, before the store closes. */
static int S_jobs(daemon_state *d)
{
        char err[512] = "";
        jobs_options jo = {.sampler = d->en,
                           .store = d->store,
                           .grace_us = d->cfg.jobs.grace_us,
                           .retention_us = d->cfg.jobs.retention_us};
        int r = jobs_new(&jo, &d->jobs, err, sizeof(err));

        if (r < 0)
                log_error("workload", "failed to set up job statistics: %s", err);
        return r;
}

static void T_jobs(daemon_state *d)
{
        d->jobs = jobs_free(d->jobs);
}

static int S_store(daemon_state *d)
{
        return open_store(d);
}

/* The start, in order; a stop runs in reverse for every step that started, so no request or
 * hook may see a freed sampler, health engine or store. Nothing is written before the start is
 * known to go ahead: the GPUs first (no GPU, no start, nothing created), then the listeners and
 * lock of the vigild we replace, then the data directory and its lock, and only then files. */
static const step steps[] = {
    {"backend", S_backend, T_backend},
    {"takeover connection", S_takeover_connect, T_takeover_connect},
    {"data directory", S_data_dir, T_data_dir},
    {"socket directory", S_socket_dir, NULL},
    {"store", S_store, T_store},
    {"cache", S_cache, T_cache},
    {"sampler", S_sampler, T_sampler},
    {"anomaly detection", S_anomaly, T_anomaly},
    {"jobs", S_jobs, T_jobs},
    {"workload", S_workload, T_workload},
    {"counters", S_counters, T_counters},
    {"diagnostics", S_diag, T_diag},
    {"health", S_health, T_health},
    {"security", S_security, T_security},
    {"gpu configuration", S_gpuconfig, T_gpuconfig},
    {"http", S_api, T_api},
    {"first sweep (takeover)", S_sweeps_early, T_sweeps},
    {"listeners", S_listen, T_listen},
    {"takeover socket", S_takeover, T_takeover},
    {"sampling", S_sampling, NULL},
};

/* Start the steps in order; *n_started tells how many to stop. 0 or the failed step's -errno. */
static int steps_start(daemon_state *d, size_t *n_started)
{
        for (*n_started = 0; *n_started < ARRAY_SIZE(steps); (*n_started)++) {
                const step *s = &steps[*n_started];
                int r = s->start(d);
                if (r < 0) {
                        log_error("vigild", "start step '%s' failed: %s", s->name, strerror(-r));
                        (*n_started)++; /* its stop releases what it built before failing */
                        return r;
                }
                log_debug("vigild", "started '%s'", s->name);
        }
        return 0;
}

static void steps_stop(daemon_state *d, size_t n_started)
{
        while (n_started-- > 0)
                if (steps[n_started].stop)
                        steps[n_started].stop(d);
}

/* Run until a stop signal or a handover: READY=1 after the first sweep, watchdog pings, SIGHUP
 * and POST /api/v1/config/reload reload, SIGUSR2 starts a successor. */
static void run(daemon_state *d, int sfd)
{
        bool announced_ready = false;
        int64_t wd_us = 0, wd_last = 0, log_due = 0;
        pid_t successor = 0;
        int r;

#ifdef VIGIL_HAVE_SYSTEMD
        {
                uint64_t usec = 0;
                if (sd_dl_watchdog_enabled(&usec) > 0)
                        wd_us = (int64_t)usec;
        }
#endif
        for (;;) {
                struct pollfd pfd[4] = {{.fd = sfd, .events = POLLIN}};
                struct signalfd_siginfo si;
                int tfd[2], tcp_fd, unix_fd;
                size_t nt = takeover_poll_fds(d->tk, tfd);
                int64_t now, due, log_iv;

                if (!announced_ready && sampler_ready(d->en)) {
                        announced_ready = true;
                        log_info("vigild", "ready: first sweep done, %u of %u GPUs up",
                                 sampler_gpus_up(d->en), sampler_gpu_count(d->en));
                        notify("READY=1");
                }
                if (announced_ready)
                        watchdog_ping(d->en, wd_us, &wd_last);
                now = time_mono_us();
                log_iv = MAX(d->cfg.logging.rate_interval_us, 100 * USEC_PER_MSEC);
                if (now >= log_due) {
                        log_tick(); /* "suppressed N messages" lines */
                        log_due = now + log_iv;
                }
                for (size_t i = 0; i < nt; i++)
                        pfd[1 + i] = (struct pollfd){.fd = tfd[i], .events = POLLIN};
                pfd[1 + nt] = (struct pollfd){.fd = d->rl_fd, .events = POLLIN};
                /* Sleep until the next thing due, not on a fixed tick: the first sweep (looked
                 * for every 20 ms until then), the watchdog ping (half its interval, only under
                 * systemd), the rate limiter's summaries (one look per rate-limit window: a
                 * window's summary is due at its end), a successor's deadline. Signals, reload
                 * requests and the takeover socket wake the poll themselves. */
                due = MIN(log_due, takeover_next_due_us(d->tk));
                if (!announced_ready)
                        due = MIN(due, now + 20 * USEC_PER_MSEC);
                else if (wd_us)
                        due = MIN(due, wd_last >= 0 ? wd_last + wd_us / 2 : now + wd_us / 4);
                int wait_ms =
                    due == INT64_MAX ? -1 : (int)MIN(MAX((due - now + 999) / 1000, 0), INT_MAX);

                r = poll(pfd, 2 + nt, wait_ms);
                if (r > 0 && (pfd[1 + nt].revents & POLLIN))
                        config_reload_serve(d);
                api_listen_fds(d->api, &tcp_fd, &unix_fd);
                if (takeover_process(d->tk, tcp_fd, unix_fd, &successor) == 1) {
                        d->handed_over = true;
                        log_info("takeover", "pid %d serves now; draining and exiting",
                                 (int)successor);
#ifdef VIGIL_HAVE_SYSTEMD
                        {
                                char st[32];
                                snprintf(st, sizeof(st), "MAINPID=%d", (int)successor);
                                sd_dl_notify(st);
                        }
#endif
                        return;
                }
                if (r <= 0 || !(pfd[0].revents & POLLIN))
                        continue;
                if (read(sfd, &si, sizeof(si)) != sizeof(si))
                        continue;
                if (si.ssi_signo == SIGHUP) {
                        unsigned status;
                        log_reopen(); /* logrotate moved the file */
                        json_decref(reload(d, &status));
                        continue;
                }
                if (si.ssi_signo == SIGUSR2) {
                        pid_t pid;
                        r = takeover_spawn(d->tk, d->exe, (char **)d->argv, &pid);
                        if (r < 0)
                                log_error("takeover", "failed to start a successor '%s': %s",
                                          d->exe, strerror(-r));
                        else
                                log_info("takeover", "started successor pid %d ('%s')", (int)pid,
                                         d->exe);
                        continue;
                }
                log_info("vigild", "stopping on %s", strsignal((int)si.ssi_signo));
                notify("STOPPING=1");
                return;
        }
}

/* --check-config: the start's own validation (configuration, then every module's plan), minus
 * binding sockets and touching the data directory. */
static int check_config(cli_overrides *o)
{
        vigil_config c;
        config_plan plan;
        const char *path;
        char err[1024] = "";
        int r;

        o->config = o->check_config;
        r = load_config(o, &c, &path, err, sizeof(err));
        if (r == 0) {
                r = plan_prepare(&c, c.simulate.enabled, false, &plan, err, sizeof(err));
                if (r == 0)
                        plan_release(&plan);
        }
        config_release(&c);
        if (r < 0) {
                fprintf(stderr, "vigild: %s\n", err);
                return 1;
        }
        printf("%s: configuration is valid\n", o->check_config);
        return 0;
}

int main(int argc, char **argv)
{
        cli_overrides o = {0};
        daemon_state d = {
            .rl_fd = -1, .tk_conn = -1, .tk_tcp = -1, .tk_unix = -1, .tk_lock = -1, .lock_fd = -1};
        char err[1024] = "";
        sigset_t mask;
        size_t started = 0;
        int sfd = -1, r, rc = 1;

        if (parse_args(argc, argv, &o) < 0)
                return 2;
        /* glibc gives each thread that allocates its own malloc arena (up to 8 per core); vigild
         * has a dozen threads that allocate little and rarely, so two arenas are plenty: ~120 KiB
         * less resident at one GPU (bench/RESULTS.md §7). MALLOC_ARENA_MAX in the environment
         * still wins (glibc reads it before main). */
        if (!getenv("MALLOC_ARENA_MAX"))
                mallopt(M_ARENA_MAX, 2);
        /* Block the signals we handle before any thread exists, so every thread inherits the
         * mask and they are only ever taken from the signalfd in the main loop. */
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        sigaddset(&mask, SIGUSR2); /* start a successor: zero-downtime upgrade */
        pthread_sigmask(SIG_BLOCK, &mask, NULL);
        signal(SIGPIPE, SIG_IGN);

        /* 1. configuration, validated as a whole before anything starts */
        if (o.check_config)
                return check_config(&o);
        pthread_mutex_init(&d.cfg_lock, NULL);
        pthread_mutex_init(&d.rl_lock, NULL);
        pthread_cond_init(&d.rl_cond, NULL);
        d.o = &o;
        d.argv = argv;
        r = load_config(&o, &d.cfg, &d.config_path, err, sizeof(err));
        if (r == 0)
                r = plan_prepare(&d.cfg, d.cfg.simulate.enabled, false, &d.plan, err, sizeof(err));
        if (r < 0) {
                fprintf(stderr, "vigild: %s\n", err);
                config_release(&d.cfg);
                return 1;
        }

        /* 2. logging */
        log_set_level(d.cfg.logging.level);
        log_set_format(d.cfg.logging.format);
        if (log_configure(&d.plan.log, err, sizeof(err)) < 0) {
                fprintf(stderr, "vigild: %s\n", err);
                plan_release(&d.plan);
                config_release(&d.cfg);
                return 1;
        }
        log_info("vigild", "starting vigild %s (config '%s')", VIGIL_VERSION,
                 d.config_path ? d.config_path : "defaults");

        /* 3. the steps (steps[]), then run until a signal */
        sfd = signalfd(-1, &mask, SFD_CLOEXEC);
        d.rl_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        r = steps_start(&d, &started);
        plan_release(&d.plan); /* the modules copied or took what they needed */
        if (r == 0) {
                run(&d, sfd);
                reloads_close(&d);
                /* answer what is in flight, briefly: a stop takes well under a second; a
                 * handover lets the clients of our keep-alive connections move to the
                 * successor */
                unsigned left = api_drain(d.api, (d.handed_over ? 3000 : 300) * USEC_PER_MSEC);
                if (left)
                        log_info("vigild", "closing %u idle connections", left);
                rc = 0;
        }

        /* 4. stop in reverse order */
        reloads_close(&d);
        /* while the data-directory lock is still ours: a vigild that starts after us writes
         * its own address, which must not be the one removed */
        if (rc == 0 && !d.handed_over) /* a successor in the same data dir wrote its own */
                unlink(d.addr_file);
        steps_stop(&d, started);
        if (sfd >= 0)
                close(sfd);
        if (d.rl_fd >= 0)
                close(d.rl_fd);
        log_close();
        json_decref(d.rl_result);
        json_decref(d.pending);
        config_release(&d.cfg);
        return rc;
}
