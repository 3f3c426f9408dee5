/* main.c — vigild: the lifecycle in one visible order.
 *   1. options and configuration   2. logging   3. the NVML backend (real, or fake for --simulate)
 *   4. cache and sampler            5. HTTP     6. run until a signal (SIGHUP reloads)
 *   7. stop in reverse order. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef VIGIL_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "api/api.h"
#include "api/counters.h"
#include "backend/backend.h"
#include "cache/cache.h"
#include "common/log.h"
#include "common/macros.h"
#include "common/vtime.h"
#include "config.h"
#include "observe.h"
#include "security.h"
#include "sampler/sampler.h"
#include "health_glue.h"
#include "plan.h"
#include "store/backup.h"
#include "store/crypto.h"
#include "store/service.h"
#include "store/store.h"
#include "takeover.h"

#define DEFAULT_CONFIG "/etc/vigil/vigil.yaml"

static void notify(const char *state)
{
#ifdef VIGIL_HAVE_SYSTEMD
        sd_notify(0, state);
#else
        (void)state;
#endif
}

/* systemd watchdog: ping every half period, but only while the fast tier keeps sweeping, so a
 * hung NVML call (GPU fallen off the bus) stops the pings and systemd restarts us. */
static void watchdog_ping(sampler *en, int64_t wd_us, int64_t *last_ping_us)
{
        sampler_stats st;
        int64_t now = time_mono_us(), age, stale;

        if (wd_us <= 0 || (*last_ping_us >= 0 && now - *last_ping_us < wd_us / 2))
                return;
        sampler_get_stats(en, &st);
        age = time_real_us() - st.tier[TIER_FAST].last_sweep_us;
        stale = MAX(3 * st.tier[TIER_FAST].interval_us, wd_us / 2);
        if (st.tier[TIER_FAST].sweeps == 0 || age > stale) {
                if (*last_ping_us >= 0) /* once per stall */
                        log_warn("vigild",
                                 "sampler stalled: last fast sweep %.1fs ago, "
                                 "withholding the watchdog ping",
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
        health *health;          /* health rules, incidents, alerts; NULL until set up */
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
        uint64_t rl_seq;    /* reloads answered so far */
        json_t *rl_result;  /* outcome of the last requested reload, taken by the requester */
        unsigned rl_status; /* its HTTP status */
} daemon_state;

/* 2b. durable state: the keyring, the store (restoring the newest good backup if the database
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
        store_options so = {.path = db, .integrity_check = true};
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
                                restore_options ro = {.archive = v[i].path,
                                                      .data_dir = c->data_dir,
                                                      .keyring = d->keyring,
                                                      .check = true};
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
        r = backup_service_new(&bc, d->store, d->keyring, &d->backup);
        if (r == 0)
                r = backup_service_start(d->backup);
        if (r < 0) {
                log_error("store", "failed to start the backup service: %s", strerror(-r));
                return r;
        }
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

static int mkdir_p(const char *dir)
{
        char tmp[PATH_MAX];

        if (snprintf(tmp, sizeof(tmp), "%s", dir) >= (int)sizeof(tmp))
                return -ENAMETOOLONG;
        for (char *p = tmp + 1; *p; p++) {
                if (*p != '/')
                        continue;
                *p = '\0';
                if (mkdir(tmp, 0750) < 0 && errno != EEXIST)
                        return -errno;
                *p = '/';
        }
        if (mkdir(tmp, 0750) < 0 && errno != EEXIST)
                return -errno;
        return 0;
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
        /* The TLS settings (paths, client auth, versions) of either source need a restart; the
         * certificate files' contents are re-read now. */
        bool tls_changed = strcmp(plan.sec.tls_key, d->tls_key) != 0;

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
        if (log_configure(&plan.log, err, sizeof(err)) < 0)
                log_error("config", "keeping the running log sinks: %s", err);
        if (d->health)
                health_reconfigure(d->health, &plan.health.cfg);

        pthread_mutex_lock(&d->cfg_lock);
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
        while (d->rl_busy)
                if (pthread_cond_timedwait(&d->rl_cond, &d->rl_lock, &until) == ETIMEDOUT)
                        goto out;
        d->rl_busy = true;
        seq = d->rl_seq;
        if (write(d->rl_fd, &one, sizeof(one)) != sizeof(one)) {
                d->rl_busy = false;
                goto out;
        }
        while (d->rl_seq == seq)
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

int main(int argc, char **argv)
{
        cli_overrides o = {0};
        daemon_state d = {0};
        char err[1024] = "", url[256] = "", addr_file[PATH_MAX], hostname[256] = "";
        backend_options bopt = {0};
        backend *be = NULL;
        cache *ca = NULL;
        sampler *en = NULL;
        sampler_field_interval overrides[256];
        counter_set *counters = NULL;
        config_plan plan = {0};
        api_label labels[64];
        sigset_t mask;
        int sfd = -1, r, rc = 1;
        bool announced_ready = false;
        takeover *tk = NULL;
        char tk_path[PATH_MAX], exe[PATH_MAX] = "";
        int tk_conn = -1, tk_tcp = -1, tk_unix = -1;
        bool sampler_started = false, handed_over = false;
        pid_t successor = 0;
        int64_t wd_us = 0, wd_last = 0;

        if (parse_args(argc, argv, &o) < 0)
                return 2;
        /* Block the signals we handle before any thread exists, so every thread inherits the
         * mask and they are only ever taken from the signalfd in the main loop. */
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        sigaddset(&mask, SIGUSR2); /* start a successor: zero-downtime upgrade */
        pthread_sigmask(SIG_BLOCK, &mask, NULL);
        signal(SIGPIPE, SIG_IGN);

        /* 1. configuration */
        if (o.check_config) {
                /* The start's own validation (configuration, then every module's plan), minus
                 * binding sockets and touching the data directory. */
                vigil_config c;
                const char *path;
                o.config = o.check_config;
                r = load_config(&o, &c, &path, err, sizeof(err));
                if (r == 0) {
                        r = plan_prepare(&c, c.simulate.enabled, false, &plan, err, sizeof(err));
                        plan_release(&plan);
                }
                config_release(&c);
                if (r < 0) {
                        fprintf(stderr, "vigild: %s\n", err);
                        return 1;
                }
                printf("%s: configuration is valid\n", o.check_config);
                return 0;
        }
        pthread_mutex_init(&d.cfg_lock, NULL);
        pthread_mutex_init(&d.rl_lock, NULL);
        pthread_cond_init(&d.rl_cond, NULL);
        d.rl_fd = -1;
        d.o = &o;
        r = load_config(&o, &d.cfg, &d.config_path, err, sizeof(err));
        if (r == 0)
                r = plan_prepare(&d.cfg, d.cfg.simulate.enabled, false, &plan, err, sizeof(err));
        if (r < 0) {
                fprintf(stderr, "vigild: %s\n", err);
                config_release(&d.cfg);
                return 1;
        }
        snprintf(d.tls_key, sizeof(d.tls_key), "%s", plan.sec.tls_key);

        /* 2. logging */
        log_set_level(d.cfg.logging.level);
        log_set_format(d.cfg.logging.format);
        if (log_configure(&plan.log, err, sizeof(err)) < 0) {
                fprintf(stderr, "vigild: %s\n", err);
                plan_release(&plan);
                config_release(&d.cfg);
                return 1;
        }
        log_info("vigild", "starting vigild %s (config '%s')", VIGIL_VERSION,
                 d.config_path ? d.config_path : "defaults");

        r = mkdir_p(d.cfg.data_dir);
        if (r < 0) {
                log_error("vigild", "failed to create data directory '%s': %s", d.cfg.data_dir,
                          strerror(-r));
                goto out;
        }

        if (d.cfg.socket[0] && strrchr(d.cfg.socket, '/') &&
            strrchr(d.cfg.socket, '/') != d.cfg.socket) {
                /* /run/vigil is a tmpfs directory that systemd's RuntimeDirectory= creates; when
                 * started by hand, create it rather than refuse to start. */
                char dir[PATH_MAX];
                snprintf(dir, sizeof(dir), "%.*s", (int)(strrchr(d.cfg.socket, '/') - d.cfg.socket),
                         d.cfg.socket);
                r = mkdir_p(dir);
                if (r < 0)
                        log_warn("vigild", "failed to create socket directory '%s': %s", dir,
                                 strerror(-r));
        }

        r = open_store(&d);
        if (r < 0)
                goto out;

        /* 3. backend */
        bopt.library = d.cfg.nvml.library;
        bopt.simulate = d.cfg.simulate.enabled;
        bopt.scenario = d.cfg.simulate.scenario[0] ? d.cfg.simulate.scenario : NULL;
        r = backend_open(&bopt, &be, err, sizeof(err));
        if (r < 0) {
                if (bopt.simulate)
                        log_error("vigild", "failed to start the simulated GPUs: %s", err);
                else
                        log_error("vigild",
                                  "no usable GPU: %s. Run with --simulate to use simulated GPUs",
                                  err);
                goto out;
        }
        {
                unsigned n = 0;
                backend_device_count(be, &n);
                if (bopt.simulate)
                        log_warn("vigild",
                                 "SIMULATED GPUs: %u GPUs from scenario '%s' (fake NVML '%s'); "
                                 "no real GPU is read",
                                 n, bopt.scenario ? bopt.scenario : "built-in default",
                                 backend_library(be));
                else if (n == 0)
                        log_warn("vigild", "NVML reports no GPU on this node");
                else
                        log_info("vigild", "found %u GPUs through '%s'", n, backend_library(be));
        }

        /* 4. cache and sampler */
        r = cache_new(sampler_max_gpus(), &ca);
        if (r < 0) {
                log_error("vigild", "failed to create the cache: %s", strerror(-r));
                goto out;
        }
        {
                sampler_options eo = {
                    .backend = be,
                    .cache = ca,
                    .fast_us = d.cfg.collection.fast_us,
                    .slow_us = d.cfg.collection.slow_us,
                    .overrides = overrides,
                    .n_overrides = MIN(d.cfg.collection.n_fields, ARRAY_SIZE(overrides)),
                    .keep_max_age_us = d.cfg.collection.max_age_us,
                    .keep_max_samples = d.cfg.collection.max_samples,
                    .adaptive = {d.cfg.collection.adaptive_enabled,
                                 d.cfg.collection.adaptive_max_share,
                                 d.cfg.collection.adaptive_max_stretch},
                    .on_sweep = on_sweep,
                    .on_event = on_event,
                    .userdata = &d,
                };
                for (size_t i = 0; i < eo.n_overrides; i++) {
                        overrides[i].field_id = d.cfg.collection.fields[i].field_id;
                        overrides[i].interval_us = d.cfg.collection.fields[i].interval_us;
                }
                r = sampler_new(&eo, &en);
                if (r < 0) {
                        log_error("vigild", "failed to set up sampling: %s", strerror(-r));
                        goto out;
                }
        }
        d.en = en;
        d.ca = ca;
        d.anomaly = observe_anomaly_new(&d.cfg);

        /* 5. HTTP */
        if (plan.counters) {
                counters = TAKE_PTR(plan.counters); /* must outlive the api */
                log_info("vigild", "exporting %zu dcgm-exporter families from '%s'",
                         counters->n - counters->n_labels, d.cfg.metrics.counters_csv);
        }
        if (d.cfg.metrics.hostname && d.cfg.metrics.hostname[0])
                snprintf(hostname, sizeof(hostname), "%s", d.cfg.metrics.hostname);
        else
                gethostname(hostname, sizeof(hostname) - 1);
        snprintf(addr_file, sizeof(addr_file), "%s/vigild.addr", d.cfg.data_dir);
        snprintf(tk_path, sizeof(tk_path), "%s/takeover.sock", d.cfg.data_dir);
        if (realpath("/proc/self/exe", exe) == NULL)
                snprintf(exe, sizeof(exe), "%s", argv[0]);
        if (o.takeover) {
                r = takeover_connect(o.takeover, &tk_conn, &tk_tcp, &tk_unix, err, sizeof(err));
                if (r < 0) {
                        log_error("takeover", "%s", err);
                        goto out;
                }
        }
        {
                /* 4b. health: rules, incidents (reloaded from the store), alerts, policies */
                {
                        health_options ho = {.sampler = en,
                                             .cache = ca,
                                             .backend = be,
                                             .store = d.store,
                                             .data_dir = d.cfg.data_dir,
                                             .hostname = hostname,
                                             .cfg = &plan.health.cfg};
                        r = health_new(&ho, &d.health);
                        if (r == 0) /* an anomaly that opens is an incident */
                                health_watch_anomalies(d.health, d.anomaly);
                }
                if (r < 0) {
                        log_error("vigild", "failed to set up the health engine: %s", strerror(-r));
                        goto out;
                }
                r = health_start(d.health);
                if (r < 0) {
                        log_error("vigild", "failed to start the health engine: %s", strerror(-r));
                        goto out;
                }
        }
        {
                size_t nl = MIN(d.cfg.metrics.n_extra_labels, ARRAY_SIZE(labels));
                api_options ao = {
                    .sampler = en,
                    .cache = ca,
                    .backend = be,
                    .health = d.health,
                    .listen = d.cfg.listen,
                    .socket_path = d.cfg.socket,
                    .addr_file = addr_file,
                    .hostname = hostname,
                    .extra_labels = labels,
                    .n_extra_labels = nl,
                    .dcgm_naming = d.cfg.metrics.naming == CONFIG_NAMING_DCGM || counters,
                    .counters = counters,
                    .threads = d.cfg.http.threads,
                    .max_connections = d.cfg.http.max_connections,
                    .max_per_ip = d.cfg.http.max_connections_per_ip,
                    .timeout_s = (unsigned)(d.cfg.http.connection_timeout_us / USEC_PER_SEC),
                    .max_body = d.cfg.http.max_request_body,
                    .simulated = bopt.simulate,
                    .anomaly = d.anomaly,
                    .config_json = config_json,
                    .config_reload = config_reload_request,
                    .userdata = &d,
                    .store = d.store,
                    .backup = d.backup,
                };
                r = security_start(&plan.sec, &d.cfg, d.store, &d.gate, &d.tls, err, sizeof(err));
                if (r < 0) {
                        log_error("vigild", "failed to set up security: %s", err);
                        goto out;
                }
                ao.gate = d.gate;
                ao.tls = d.tls;
                for (size_t i = 0; i < nl; i++) {
                        labels[i].name = d.cfg.metrics.extra_labels[i].name;
                        labels[i].value = d.cfg.metrics.extra_labels[i].value;
                }
                ao.inherit_tcp_fd = tk_tcp >= 0 ? tk_tcp : 0;
                ao.inherit_unix_fd = tk_unix >= 0 ? tk_unix : 0;
                tk_tcp = tk_unix = -1; /* the api owns them now */
                r = api_new(&ao, &d.api);
                if (r < 0) {
                        log_error("vigild", "failed to set up HTTP: %s", strerror(-r));
                        goto out;
                }
        }
        if (tk_conn >= 0) {
                /* takeover: serve the inherited sockets only once our first sweep is done */
                r = sampler_start(en);
                if (r < 0) {
                        log_error("vigild", "failed to start sampling: %s", strerror(-r));
                        goto out;
                }
                sampler_started = true;
                for (int64_t t0 = time_mono_us(); !sampler_ready(en); usleep(10000))
                        if (time_mono_us() - t0 > 60 * USEC_PER_SEC) {
                                log_error("takeover", "not ready after 60s: leaving the "
                                                      "running vigild in place");
                                goto out;
                        }
        }
        r = api_start(d.api, url, sizeof(url), err, sizeof(err));
        if (r < 0) {
                log_error("vigild", "%s", err);
                goto out;
        }
        if (tk_conn >= 0) {
                r = takeover_confirm(tk_conn, 5000);
                tk_conn = -1;
                if (r < 0)
                        log_warn("takeover", "the previous vigild did not confirm the handover: %s",
                                 strerror(-r));
                else
                        log_info("takeover", "took over the listeners from '%s'", o.takeover);
        }
        r = takeover_listen(tk_path, &tk);
        if (r < 0)
                log_warn("takeover", "failed to listen on '%s', upgrades will not be seamless: %s",
                         tk_path, strerror(-r));
        if (url[0])
                log_info("vigild", "listening on %s", url);
        if (d.cfg.socket[0])
                log_info("vigild", "listening on unix:%s", d.cfg.socket);
        if (d.gate) {
                char line[512];
                gate_describe(d.gate, url, d.cfg.socket, d.tls != NULL, line, sizeof(line));
                log_info("security", "%s", line);
        }

        /* 6. run */
        sfd = signalfd(-1, &mask, SFD_CLOEXEC);
#ifdef VIGIL_HAVE_SYSTEMD
        {
                uint64_t usec = 0;
                if (sd_watchdog_enabled(0, &usec) > 0)
                        wd_us = (int64_t)usec;
        }
#endif
        r = sampler_started ? 0 : sampler_start(en);
        if (r < 0) {
                log_error("vigild", "failed to start sampling: %s", strerror(-r));
                goto out;
        }
        d.rl_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        for (;;) {
                struct pollfd pfd[4] = {{.fd = sfd, .events = POLLIN}};
                struct signalfd_siginfo si;
                int tfd[2], tcp_fd, unix_fd;
                size_t nt = takeover_poll_fds(tk, tfd);

                if (!announced_ready && sampler_ready(en)) {
                        announced_ready = true;
                        log_info("vigild", "ready: first sweep done, %u of %u GPUs up",
                                 sampler_gpus_up(en), sampler_gpu_count(en));
                        notify("READY=1");
                }
                if (announced_ready)
                        watchdog_ping(en, wd_us, &wd_last);
                log_tick(); /* "suppressed N messages" lines */
                for (size_t i = 0; i < nt; i++)
                        pfd[1 + i] = (struct pollfd){.fd = tfd[i], .events = POLLIN};
                int wait_ms = wd_us ? (int)MIN(1000, wd_us / 4000) : 1000;

                pfd[1 + nt] = (struct pollfd){.fd = d.rl_fd, .events = POLLIN};
                r = poll(pfd, 2 + nt, announced_ready ? wait_ms : 20);
                if (r > 0 && (pfd[1 + nt].revents & POLLIN))
                        config_reload_serve(&d);
                api_listen_fds(d.api, &tcp_fd, &unix_fd);
                if (takeover_process(tk, tcp_fd, unix_fd, &successor) == 1) {
                        handed_over = true;
                        log_info("takeover", "pid %d serves now; draining and exiting",
                                 (int)successor);
#ifdef VIGIL_HAVE_SYSTEMD
                        sd_notifyf(0, "MAINPID=%d", (int)successor);
#endif
                        break;
                }
                if (r <= 0 || !(pfd[0].revents & POLLIN))
                        continue;
                if (read(sfd, &si, sizeof(si)) != sizeof(si))
                        continue;
                if (si.ssi_signo == SIGHUP) {
                        unsigned status;
                        log_reopen(); /* logrotate moved the file */
                        json_decref(reload(&d, &status));
                        continue;
                }
                if (si.ssi_signo == SIGUSR2) {
                        pid_t pid;
                        r = takeover_spawn(tk, exe, argv, &pid);
                        if (r < 0)
                                log_error("takeover", "failed to start a successor '%s': %s", exe,
                                          strerror(-r));
                        else
                                log_info("takeover", "started successor pid %d ('%s')", (int)pid,
                                         exe);
                        continue;
                }
                log_info("vigild", "stopping on %s", strsignal((int)si.ssi_signo));
                notify("STOPPING=1");
                break;
        }
        /* answer what is in flight, briefly: a stop takes well under a second; a handover lets
         * the clients of our keep-alive connections move to the successor */
        {
                unsigned left = api_drain(d.api, (handed_over ? 3000 : 300) * USEC_PER_MSEC);
                if (left)
                        log_info("vigild", "closing %u idle connections", left);
        }
        rc = 0;

out:
        /* 7. stop in reverse order: no request may see a freed sampler */
        tk = takeover_free(tk);
        if (tk_conn >= 0)
                close(tk_conn);
        if (tk_tcp >= 0)
                close(tk_tcp);
        if (tk_unix >= 0)
                close(tk_unix);
        if (handed_over)
                api_handed_over(d.api);
        api_stop(d.api);
        sampler_stop(en);
        if (d.anomaly)
                anomaly_save(d.anomaly);  /* baselines survive the restart */
        d.health = health_free(d.health); /* after the engine: no hook runs any more */
        d.api = api_free(d.api);
        d.anomaly = anomaly_free(d.anomaly);
        d.gate = gate_free(d.gate);
        d.tls = tls_free(d.tls);
        counters = counters_free(counters);
        en = sampler_free(en);
        ca = cache_free(ca);
        be = backend_close(be);
        d.backup = backup_service_free(d.backup); /* durable state goes last */
        d.store = store_close(d.store);
        d.keyring = crypto_keyring_free(d.keyring);
        if (sfd >= 0)
                close(sfd);
        if (rc == 0 && !handed_over) /* a successor in the same data dir wrote its own */
                unlink(addr_file);
        log_close();
        plan_release(&plan);
        if (d.rl_fd >= 0)
                close(d.rl_fd);
        json_decref(d.rl_result);
        json_decref(d.pending);
        config_release(&d.cfg);
        return rc;
}
