/* gpuconfig.c — GPU configuration (gpuconfig.h): text values, the worker thread that makes every
 * NVML call, set / restore / get requests handed over by the HTTP threads, the saved previous
 * values in the store, and enforcement of config.enforce with its drift gauge.
 *
 * Enforcement. NVML cannot tell that a GPU was reset, and a reset or a driver reload puts the
 * power limit, clocks, compute and persistence mode back to their defaults. The worker therefore
 * applies the desired settings (1) at start and after a reload of config.enforce, (2) when the
 * sampler re-attached the GPU (it fell off the bus: a reset or a driver reload), and (3) when a
 * readable setting that was in its desired state is found out of it on a slow sweep (a reset the
 * sampler did not see as a loss). Locked clocks, which NVML cannot read, are applied in those
 * three cases only. A setting NVML refused is not tried again until one of them happens, so a
 * GPU that refuses (no permission) does not fill the log and the audit trail every sweep. */
#include "gpuconfig.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/macros.h"
#include "common/vtime.h"
#ifdef VIGIL_HAVE_STORE
#include "store/store.h"
#endif

#define CLOCKS_MAX 512 /* supported clocks asked from NVML per list */

/* ---- the module ---- */

enum job_kind { JOB_GET, JOB_SET, JOB_RESTORE };

typedef struct job {
        enum job_kind kind;
        unsigned gpu;
        gpucfg_value values[BCFG_COUNT]; /* SET */
        unsigned mask;                   /* RESTORE */
        bool dry_run;
        json_t *out; /* result, owned until taken */
        int rc;
        char err[256];
        bool done;        /* (L) */
        int refs;         /* (L) the caller and the queue */
        struct job *next; /* (L) */
} job;

struct gpuconfig {
        gpuconfig_options opt;
        pthread_mutex_t lock;    /* guards (L) */
        pthread_cond_t wake;     /* work for the worker (L) */
        pthread_cond_t done;     /* a job finished (L) */
        gpucfg_desired *enforce; /* (L) owned */
        size_t n_enforce;        /* (L) */
        bool enforce_all;        /* (L) apply everything at the next pass: start, reload */
        bool check;              /* (L) a slow sweep asks for a look */
        bool stopping, started;  /* (L) */
        job *head, *tail;        /* (L) queue */
        pthread_t thread;
        signed char drift[SAMPLER_MAX_GPUS][BCFG_COUNT]; /* (L) -1 not governed or unknown */
        uint64_t enforced, enforce_failed;               /* (L) settings applied / refused */
        /* worker thread only */
        uint64_t attaches[SAMPLER_MAX_GPUS]; /* sampler's attach count at the last pass */
        bool seen[SAMPLER_MAX_GPUS];
        bool failed[SAMPLER_MAX_GPUS][BCFG_COUNT]; /* NVML refused the desired value */
};

static gpucfg_desired *desired_copy(const gpucfg_desired *v, size_t n)
{
        gpucfg_desired *c;

        if (!n)
                return NULL;
        c = calloc(n, sizeof(*c));
        if (c)
                memcpy(c, v, n * sizeof(*c));
        return c;
}

int gpuconfig_new(const gpuconfig_options *opt, gpuconfig **ret)
{
        gpuconfig *g = calloc(1, sizeof(*g));

        if (!g)
                return -ENOMEM;
        g->opt = *opt;
        g->n_enforce = MIN(opt->n_enforce, (size_t)GPUCFG_ENFORCE_MAX);
        g->enforce = desired_copy(opt->enforce, g->n_enforce);
        if (g->n_enforce && !g->enforce) {
                free(g);
                return -ENOMEM;
        }
        g->opt.enforce = NULL;
        pthread_mutex_init(&g->lock, NULL);
        pthread_cond_init(&g->wake, NULL);
        pthread_cond_init(&g->done, NULL);
        memset(g->drift, -1, sizeof(g->drift));
        g->enforce_all = true;
        *ret = g;
        return 0;
}

/* Desired values of GPU idx (uuid): later entries override earlier ones. Takes the lock. */
static bool desired_of(gpuconfig *g, unsigned idx, const char *uuid, gpucfg_value out[BCFG_COUNT])
{
        bool any = false;

        memset(out, 0, sizeof(gpucfg_value) * BCFG_COUNT);
        pthread_mutex_lock(&g->lock);
        for (size_t i = 0; i < g->n_enforce; i++) {
                const gpucfg_desired *d = &g->enforce[i];
                bool match = gpucfg_gpus_match(d->gpus, idx, uuid);

                if (!match)
                        continue;
                for (unsigned s = 0; s < BCFG_COUNT; s++) {
                        char err[160];
                        if (d->value[s][0] &&
                            gpucfg_value_parse(s, d->value[s], &out[s], err, sizeof(err)) == 0)
                                any = true;
                }
        }
        pthread_mutex_unlock(&g->lock);
        return any;
}

/* The current value of a readable setting; false when NVML cannot say (locked clocks, not
 * supported, an error). ECC: the pending mode (what the GPU will have; current is separate). */
static bool current_of(const backend_gpu_config *c, enum backend_cfg_setting s, gpucfg_value *v)
{
        *v = (gpucfg_value){.set = true};
        switch (s) {
        case BCFG_POWER_LIMIT:
                v->a = c->power_mw;
                return c->power_status == 0;
        case BCFG_APP_CLOCKS:
                v->a = c->app_mem_mhz;
                v->b = c->app_sm_mhz;
                return c->app_status == 0;
        case BCFG_COMPUTE_MODE:
                v->a = c->compute_mode;
                return c->compute_status == 0;
        case BCFG_PERSISTENCE:
                v->a = c->persistence;
                return c->persistence_status == 0;
        case BCFG_ECC:
                v->a = c->ecc_pending;
                return c->ecc_status == 0;
        default:
                return false;
        }
}

/* The getter status standing for a setting's support (locked clocks: the application clocks). */
static int status_of(const backend_gpu_config *c, enum backend_cfg_setting s)
{
        switch (s) {
        case BCFG_POWER_LIMIT:
                return c->power_status;
        case BCFG_APP_CLOCKS:
        case BCFG_LOCKED_GPU_CLOCKS:
        case BCFG_LOCKED_MEM_CLOCKS:
                return c->app_status;
        case BCFG_COMPUTE_MODE:
                return c->compute_status;
        case BCFG_PERSISTENCE:
                return c->persistence_status;
        case BCFG_ECC:
                return c->ecc_status;
        default:
                return -EINVAL;
        }
}

static bool same(enum backend_cfg_setting s, const gpucfg_value *a, const gpucfg_value *b)
{
        if (s == BCFG_APP_CLOCKS && (!a->a || !b->a))
                return false; /* "default" is not a readable value: always apply it */
        return a->a == b->a && (a->b == b->b || s == BCFG_POWER_LIMIT || s >= BCFG_COMPUTE_MODE);
}

static bool in_list(const unsigned *v, size_t n, unsigned x)
{
        for (size_t i = 0; i < n; i++)
                if (v[i] == x)
                        return true;
        return false;
}

static void range_of(const unsigned *v, size_t n, unsigned *lo, unsigned *hi)
{
        *lo = n ? v[0] : 0;
        *hi = n ? v[0] : 0;
        for (size_t i = 1; i < n; i++) {
                *lo = MIN(*lo, v[i]);
                *hi = MAX(*hi, v[i]);
        }
}

/* Check a value against what GPU idx allows. 0, or -EINVAL / -EOPNOTSUPP with a reason. */
static int validate(gpuconfig *g, unsigned idx, const backend_gpu_config *c,
                    enum backend_cfg_setting s, const gpucfg_value *v, char *err, size_t errlen)
{
        unsigned mem[CLOCKS_MAX], sm[CLOCKS_MAX], lo, hi, slo, shi;
        size_t n_mem = 0, n_sm = 0;
        int r = status_of(c, s);

        if (r == -EOPNOTSUPP) {
                snprintf(err, errlen, "%s is not supported on GPU %u", gpucfg_setting_name(s), idx);
                return r;
        }
        switch (s) {
        case BCFG_POWER_LIMIT:
                if (c->constraints_status < 0)
                        return 0; /* NVML checks it when set */
                if (v->a < c->power_min_mw || v->a > c->power_max_mw) {
                        snprintf(err, errlen,
                                 "power_limit %.3g W is outside what GPU %u allows (%.3g..%.3g W)",
                                 v->a / 1000.0, idx, c->power_min_mw / 1000.0,
                                 c->power_max_mw / 1000.0);
                        return -EINVAL;
                }
                return 0;
        case BCFG_APP_CLOCKS:
        case BCFG_LOCKED_GPU_CLOCKS:
        case BCFG_LOCKED_MEM_CLOCKS:
                if (!v->a && !v->b)
                        return 0; /* default / reset */
                r = backend_supported_mem_clocks(g->opt.backend, idx, mem, CLOCKS_MAX, &n_mem);
                if (r < 0 || !n_mem || n_mem > CLOCKS_MAX)
                        return 0; /* NVML cannot list them: it checks the value when set */
                range_of(mem, n_mem, &lo, &hi);
                if (s == BCFG_LOCKED_MEM_CLOCKS) {
                        if (v->a < lo || v->b > hi) {
                                snprintf(err, errlen,
                                         "locked_mem_clocks %u,%u MHz: GPU %u supports memory "
                                         "clocks %u..%u MHz",
                                         v->a, v->b, idx, lo, hi);
                                return -EINVAL;
                        }
                        return 0;
                }
                if (s == BCFG_APP_CLOCKS && !in_list(mem, n_mem, v->a)) {
                        snprintf(err, errlen,
                                 "app_clocks: memory clock %u MHz is not supported by GPU %u "
                                 "(supported: %u..%u MHz, %zu clocks)",
                                 v->a, idx, lo, hi, n_mem);
                        return -EINVAL;
                }
                r = backend_supported_sm_clocks(
                    g->opt.backend, idx, s == BCFG_APP_CLOCKS ? v->a : hi, sm, CLOCKS_MAX, &n_sm);
                if (r < 0 || !n_sm || n_sm > CLOCKS_MAX)
                        return 0;
                range_of(sm, n_sm, &slo, &shi);
                if (s == BCFG_APP_CLOCKS && !in_list(sm, n_sm, v->b)) {
                        snprintf(err, errlen,
                                 "app_clocks: SM clock %u MHz is not supported by GPU %u at memory "
                                 "clock %u MHz (supported: %u..%u MHz, %zu clocks)",
                                 v->b, idx, v->a, slo, shi, n_sm);
                        return -EINVAL;
                }
                if (s == BCFG_LOCKED_GPU_CLOCKS && (v->a < slo || v->b > shi)) {
                        snprintf(err, errlen,
                                 "locked_gpu_clocks %u,%u MHz: GPU %u supports SM clocks %u..%u "
                                 "MHz",
                                 v->a, v->b, idx, slo, shi);
                        return -EINVAL;
                }
                return 0;
        case BCFG_COMPUTE_MODE:
                if (v->a != 0 && v->a != 2 && v->a != 3) {
                        snprintf(err, errlen, "compute_mode %u is not 0, 2 or 3", v->a);
                        return -EINVAL;
                }
                return 0;
        default:
                return 0;
        }
}

/* Text of an NVML refusal for messages. */
static const char *why(int r)
{
        return r == -EACCES       ? "no permission (vigild must run as root to change GPU settings)"
               : r == -EOPNOTSUPP ? "not supported on this GPU"
               : r == -EINVAL     ? "NVML refused the value"
               : r == -ENODEV     ? "the GPU is lost"
                                  : strerror(-r);
}

#ifdef VIGIL_HAVE_STORE
typedef struct saved_req {
        const char *uuid;
        const char *setting;                       /* one setting (save, forget) */
        const char *value;                         /* save */
        char values[BCFG_COUNT][GPUCFG_VALUE_MAX]; /* load: "" = none saved */
} saved_req;

static int save_fn(sqlite3 *db, void *ctx)
{
        saved_req *q = ctx;
        sqlite3_stmt *st = NULL;
        int rc;

        rc = sqlite3_prepare_v2(db,
                                "INSERT OR IGNORE INTO gpuconfig_saved (uuid, setting, value, ts) "
                                "VALUES (?, ?, ?, ?)",
                                -1, &st, NULL);
        if (rc != SQLITE_OK)
                return store_errno(rc);
        sqlite3_bind_text(st, 1, q->uuid, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, q->setting, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, q->value, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, time_real_us());
        rc = sqlite3_step(st);
        sqlite3_finalize(st);
        return rc == SQLITE_DONE ? 0 : store_errno(rc);
}

static int forget_fn(sqlite3 *db, void *ctx)
{
        saved_req *q = ctx;
        sqlite3_stmt *st = NULL;
        int rc;

        rc = sqlite3_prepare_v2(db, "DELETE FROM gpuconfig_saved WHERE uuid = ? AND setting = ?",
                                -1, &st, NULL);
        if (rc != SQLITE_OK)
                return store_errno(rc);
        sqlite3_bind_text(st, 1, q->uuid, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, q->setting, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        sqlite3_finalize(st);
        return rc == SQLITE_DONE ? 0 : store_errno(rc);
}

static int load_fn(sqlite3 *db, void *ctx)
{
        saved_req *q = ctx;
        sqlite3_stmt *st = NULL;
        int rc;

        rc = sqlite3_prepare_v2(db, "SELECT setting, value FROM gpuconfig_saved WHERE uuid = ?", -1,
                                &st, NULL);
        if (rc != SQLITE_OK)
                return store_errno(rc);
        sqlite3_bind_text(st, 1, q->uuid, -1, SQLITE_STATIC);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                int s = gpucfg_setting_from_name((const char *)sqlite3_column_text(st, 0));
                const char *v = (const char *)sqlite3_column_text(st, 1);
                if (s >= 0 && v)
                        snprintf(q->values[s], sizeof(q->values[s]), "%s", v);
        }
        sqlite3_finalize(st);
        return rc == SQLITE_DONE ? 0 : store_errno(rc);
}
#endif

static int saved_load(gpuconfig *g, const char *uuid, char values[BCFG_COUNT][GPUCFG_VALUE_MAX])
{
        memset(values, 0, sizeof(char[BCFG_COUNT][GPUCFG_VALUE_MAX]));
#ifdef VIGIL_HAVE_STORE
        if (g->opt.store) {
                saved_req q = {.uuid = uuid};
                int r = store_read(g->opt.store, load_fn, &q);
                if (r < 0)
                        return r;
                memcpy(values, q.values, sizeof(q.values));
        }
#else
        (void)g;
        (void)uuid;
#endif
        return 0;
}

static int saved_put(gpuconfig *g, const char *uuid, enum backend_cfg_setting s, const char *value,
                     bool forget)
{
#ifdef VIGIL_HAVE_STORE
        saved_req q = {.uuid = uuid, .setting = gpucfg_setting_name(s), .value = value};

        if (!g->opt.store)
                return 0;
        return store_write(g->opt.store, forget ? forget_fn : save_fn, &q);
#else
        (void)g, (void)uuid, (void)s, (void)value, (void)forget;
        return 0;
#endif
}

/* Apply values on GPU idx (the SET and RESTORE jobs). save: keep the old value of each changed
 * setting (first change only); forget: drop the saved value of each setting put back. */
static int apply(gpuconfig *g, unsigned idx, const sampler_gpu *sg,
                 const gpucfg_value values[BCFG_COUNT], bool dry_run, bool save, bool forget,
                 json_t **out, char *err, size_t errlen)
{
        backend_gpu_config c;
        gpucfg_value desired[BCFG_COUNT], old[BCFG_COUNT];
        bool readable[BCFG_COUNT] = {0}, done[BCFG_COUNT] = {0};
        json_t *changes;
        int r;

        desired_of(g, idx, sg->id.uuid, desired);
        for (unsigned s = 0; s < BCFG_COUNT; s++)
                if (values[s].set && desired[s].set) {
                        char d[GPUCFG_VALUE_MAX];
                        gpucfg_value_format(s, &desired[s], d, sizeof(d));
                        snprintf(err, errlen,
                                 "%s of GPU %u is enforced by config.enforce (%s); change the "
                                 "configuration file instead",
                                 gpucfg_setting_name(s), idx, d);
                        return -EBUSY;
                }
        r = backend_gpu_config_read(g->opt.backend, idx, &c);
        if (r < 0) {
                snprintf(err, errlen, "cannot read the configuration of GPU %u: %s", idx, why(r));
                return r;
        }
        for (unsigned s = 0; s < BCFG_COUNT; s++) {
                if (!values[s].set)
                        continue;
                r = validate(g, idx, &c, s, &values[s], err, errlen);
                if (r < 0)
                        return r;
                readable[s] = current_of(&c, s, &old[s]);
        }
        changes = json_array();
        for (unsigned s = 0; s < BCFG_COUNT && changes; s++) {
                char o[GPUCFG_VALUE_MAX] = "unknown", n[GPUCFG_VALUE_MAX];
                const char *note = NULL;
                bool change;

                if (!values[s].set)
                        continue;
                if (readable[s])
                        gpucfg_value_format(s, &old[s], o, sizeof(o));
                gpucfg_value_format(s, &values[s], n, sizeof(n));
                change = !readable[s] || !same(s, &old[s], &values[s]);
                if (!change)
                        note = "unchanged";
                else if (dry_run)
                        note = s == BCFG_ECC ? "would change (pending until the next GPU reset)"
                                             : "would change";
                else {
                        r = backend_gpu_config_set(g->opt.backend, idx, s, values[s].a,
                                                   values[s].b);
                        if (r < 0) {
                                snprintf(err, errlen, "cannot set %s of GPU %u to %s: %s",
                                         gpucfg_setting_name(s), idx, n, why(r));
                                /* put back what this request already changed */
                                for (unsigned k = 0; k < s; k++)
                                        if (done[k])
                                                backend_gpu_config_set(g->opt.backend, idx, k,
                                                                       old[k].a, old[k].b);
                                json_decref(changes);
                                return r;
                        }
                        done[s] = true;
                        note = s == BCFG_ECC ? "pending until the next GPU reset" : "applied";
                }
                json_array_append_new(changes, json_pack("{s:s, s:s, s:s, s:b, s:s}", "setting",
                                                         gpucfg_setting_name(s), "old", o, "new", n,
                                                         "applied", done[s], "note", note));
        }
        if (!changes)
                return -ENOMEM;
        for (unsigned s = 0; s < BCFG_COUNT; s++) {
                char o[GPUCFG_VALUE_MAX] = "reset";
                if (!done[s] && !(forget && values[s].set && !dry_run))
                        continue;
                if (readable[s])
                        gpucfg_value_format(s, &old[s], o, sizeof(o));
                else if (s == BCFG_APP_CLOCKS)
                        snprintf(o, sizeof(o), "default");
                /* Locked clocks cannot be read: what they were before is taken as unlocked. */
                r = saved_put(g, sg->id.uuid, s, o, forget);
                if (r < 0)
                        log_warn("gpuconfig", "failed to %s the previous %s of GPU %u: %s",
                                 forget ? "forget" : "save", gpucfg_setting_name(s), idx,
                                 strerror(-r));
        }
        (void)save;
        *out = changes;
        return 0;
}

static json_t *config_json(gpuconfig *g, unsigned idx, const sampler_gpu *sg,
                           const backend_gpu_config *c)
{
        char saved[BCFG_COUNT][GPUCFG_VALUE_MAX];
        gpucfg_value desired[BCFG_COUNT];
        json_t *o = json_pack("{s:i, s:s}", "gpu", (int)idx, "uuid", sg->id.uuid);
        json_t *settings = json_object();

        saved_load(g, sg->id.uuid, saved);
        desired_of(g, idx, sg->id.uuid, desired);
        for (unsigned s = 0; s < BCFG_COUNT && o && settings; s++) {
                gpucfg_value v;
                char t[GPUCFG_VALUE_MAX];
                int st = status_of(c, s);
                json_t *e = json_object();

                if (!e)
                        break;
                if (current_of(c, s, &v) || (s == BCFG_ECC && c->ecc_status == 0)) {
                        if (s == BCFG_ECC) {
                                v.a = c->ecc;
                                gpucfg_value_format(s, &v, t, sizeof(t));
                                json_object_set_new(e, "current", json_string(t));
                                v.a = c->ecc_pending;
                                gpucfg_value_format(s, &v, t, sizeof(t));
                                json_object_set_new(e, "pending", json_string(t));
                        } else {
                                gpucfg_value_format(s, &v, t, sizeof(t));
                                json_object_set_new(e, "current", json_string(t));
                        }
                        json_object_set_new(e, "status", json_string("ok"));
                } else {
                        json_object_set_new(e, "current", json_null());
                        json_object_set_new(e, "status",
                                            json_string(st == -EOPNOTSUPP ? "not_supported"
                                                        : (s == BCFG_LOCKED_GPU_CLOCKS ||
                                                           s == BCFG_LOCKED_MEM_CLOCKS)
                                                            ? "not_readable"
                                                            : "error"));
                }
                if (s == BCFG_POWER_LIMIT && c->constraints_status == 0) {
                        json_object_set_new(e, "min", json_real(c->power_min_mw / 1000.0));
                        json_object_set_new(e, "max", json_real(c->power_max_mw / 1000.0));
                }
                json_object_set_new(e, "saved", saved[s][0] ? json_string(saved[s]) : json_null());
                if (desired[s].set) {
                        gpucfg_value_format(s, &desired[s], t, sizeof(t));
                        json_object_set_new(e, "desired", json_string(t));
                } else {
                        json_object_set_new(e, "desired", json_null());
                }
                json_object_set_new(settings, gpucfg_setting_name(s), e);
        }
        if (!o || !settings) {
                json_decref(o);
                json_decref(settings);
                return NULL;
        }
        json_object_set_new(o, "settings", settings);
        return o;
}

static void run_job(gpuconfig *g, job *j)
{
        sampler_gpu sg;
        backend_gpu_config c;
        int r;

        if (sampler_gpu_get(g->opt.sampler, j->gpu, &sg) < 0) {
                snprintf(j->err, sizeof(j->err), "no GPU %u", j->gpu);
                j->rc = -ENOENT;
                return;
        }
        if (!sg.up) {
                snprintf(j->err, sizeof(j->err), "GPU %u is lost", j->gpu);
                j->rc = -ENODEV;
                return;
        }
        switch (j->kind) {
        case JOB_GET:
                r = backend_gpu_config_read(g->opt.backend, j->gpu, &c);
                if (r < 0) {
                        snprintf(j->err, sizeof(j->err), "cannot read GPU %u: %s", j->gpu, why(r));
                        j->rc = r;
                        return;
                }
                j->out = config_json(g, j->gpu, &sg, &c);
                j->rc = j->out ? 0 : -ENOMEM;
                return;
        case JOB_SET:
                j->rc = apply(g, j->gpu, &sg, j->values, j->dry_run, true, false, &j->out, j->err,
                              sizeof(j->err));
                return;
        case JOB_RESTORE: {
                char saved[BCFG_COUNT][GPUCFG_VALUE_MAX];
                gpucfg_value v[BCFG_COUNT] = {0};
                bool any = false;

                r = saved_load(g, sg.id.uuid, saved);
                if (r < 0) {
                        snprintf(j->err, sizeof(j->err), "cannot read the saved values: %s",
                                 strerror(-r));
                        j->rc = r;
                        return;
                }
                for (unsigned s = 0; s < BCFG_COUNT; s++) {
                        if ((j->mask && !(j->mask & (1U << s))) || !saved[s][0])
                                continue;
                        if (gpucfg_value_parse(s, saved[s], &v[s], j->err, sizeof(j->err)) == 0)
                                any = true;
                }
                if (!any) {
                        snprintf(j->err, sizeof(j->err),
                                 "nothing saved to restore on GPU %u%s: no setting was changed "
                                 "with vigil config set since the last restore",
                                 j->gpu, j->mask ? " for that setting" : "");
                        j->rc = -ENOENT;
                        return;
                }
                j->rc = apply(g, j->gpu, &sg, v, j->dry_run, false, true, &j->out, j->err,
                              sizeof(j->err));
                return;
        }
        }
}

static void audit(gpuconfig *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void audit(gpuconfig *g, const char *fmt, ...)
{
        char detail[512];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(detail, sizeof(detail), fmt, ap);
        va_end(ap);
        if (g->opt.audit)
                g->opt.audit(g->opt.userdata, "gpu_config_enforce", detail);
}

/* One enforcement pass over every GPU (see the file comment). */
static void reconcile(gpuconfig *g, bool all)
{
        unsigned n = MIN(sampler_gpu_count(g->opt.sampler), (unsigned)SAMPLER_MAX_GPUS);

        for (unsigned i = 0; i < n; i++) {
                gpucfg_value d[BCFG_COUNT], cur;
                signed char drift[BCFG_COUNT], prev[BCFG_COUNT];
                backend_gpu_config c;
                sampler_gpu sg;
                bool reattached, any_reset = false, any;

                memset(drift, -1, sizeof(drift));
                if (sampler_gpu_get(g->opt.sampler, i, &sg) < 0)
                        continue;
                reattached = g->seen[i] && sg.attaches != g->attaches[i];
                g->seen[i] = true;
                g->attaches[i] = sg.attaches;
                any = desired_of(g, i, sg.id.uuid, d);
                if (!any || !sg.up || backend_gpu_config_read(g->opt.backend, i, &c) < 0) {
                        pthread_mutex_lock(&g->lock);
                        memset(g->drift[i], -1, sizeof(g->drift[i]));
                        pthread_mutex_unlock(&g->lock);
                        continue;
                }
                pthread_mutex_lock(&g->lock);
                memcpy(prev, g->drift[i], sizeof(prev));
                pthread_mutex_unlock(&g->lock);
                for (unsigned s = 0; s < BCFG_COUNT; s++) {
                        if (!d[s].set || !current_of(&c, s, &cur))
                                continue;
                        drift[s] = !same(s, &cur, &d[s]);
                        if (drift[s] && prev[s] == 0)
                                any_reset = true; /* was in line, is not: a reset */
                }
                if (reattached || any_reset || all)
                        memset(g->failed[i], 0, sizeof(g->failed[i]));
                for (unsigned s = 0; s < BCFG_COUNT; s++) {
                        char t[GPUCFG_VALUE_MAX], o[GPUCFG_VALUE_MAX] = "unknown";
                        const char *reason = all          ? "config.enforce"
                                             : reattached ? "GPU re-attached"
                                             : any_reset  ? "GPU out of its desired configuration"
                                                          : "drift";
                        bool readable;
                        int r;

                        if (!d[s].set || g->failed[i][s])
                                continue;
                        readable = current_of(&c, s, &cur);
                        if (readable ? drift[s] == 0 : !(all || reattached || any_reset))
                                continue;
                        if (s == BCFG_APP_CLOCKS && !d[s].a && readable && !(all || reattached))
                                continue; /* "default" cannot be compared: applied on events */
                        if (readable)
                                gpucfg_value_format(s, &cur, o, sizeof(o));
                        gpucfg_value_format(s, &d[s], t, sizeof(t));
                        r = backend_gpu_config_set(g->opt.backend, i, s, d[s].a, d[s].b);
                        pthread_mutex_lock(&g->lock);
                        if (r < 0)
                                g->enforce_failed++;
                        else
                                g->enforced++;
                        pthread_mutex_unlock(&g->lock);
                        if (r < 0) {
                                g->failed[i][s] = true;
                                log_warn("gpuconfig", "failed to enforce %s %s on GPU %u (%s): %s",
                                         gpucfg_setting_name(s), t, i, reason, why(r));
                                audit(g, "GPU %u (%s) %s %s -> %s: refused (%s): %s", i, sg.id.uuid,
                                      gpucfg_setting_name(s), o, t, reason, why(r));
                                continue;
                        }
                        log_info("gpuconfig", "enforced %s %s on GPU %u (was %s; %s)",
                                 gpucfg_setting_name(s), t, i, o, reason);
                        audit(g, "GPU %u (%s) %s %s -> %s: applied (%s)", i, sg.id.uuid,
                              gpucfg_setting_name(s), o, t, reason);
                }
                /* The gauge shows what the GPU has after this pass. */
                if (backend_gpu_config_read(g->opt.backend, i, &c) == 0)
                        for (unsigned s = 0; s < BCFG_COUNT; s++) {
                                if (!d[s].set || !current_of(&c, s, &cur))
                                        continue;
                                drift[s] = !same(s, &cur, &d[s]);
                                if (s == BCFG_ECC) /* pending is set; current after a reset */
                                        drift[s] = c.ecc != d[s].a;
                                if (s == BCFG_APP_CLOCKS && !d[s].a)
                                        drift[s] = -1;
                        }
                pthread_mutex_lock(&g->lock);
                memcpy(g->drift[i], drift, sizeof(drift));
                pthread_mutex_unlock(&g->lock);
        }
}

static void job_unref_locked(job *j)
{
        if (--j->refs == 0) {
                json_decref(j->out);
                free(j);
        }
}

static void *gpuconfig_main(void *arg)
{
        gpuconfig *g = arg;

        pthread_setname_np(pthread_self(), "vg-gpuconfig");
        pthread_mutex_lock(&g->lock);
        for (;;) {
                while (!g->head && !g->check && !g->enforce_all && !g->stopping)
                        pthread_cond_wait(&g->wake, &g->lock);
                if (g->stopping)
                        break;
                if (g->head) {
                        job *j = g->head;
                        g->head = j->next;
                        if (!g->head)
                                g->tail = NULL;
                        pthread_mutex_unlock(&g->lock);
                        run_job(g, j);
                        pthread_mutex_lock(&g->lock);
                        j->done = true;
                        pthread_cond_broadcast(&g->done);
                        job_unref_locked(j);
                        continue;
                }
                bool all = g->enforce_all;
                g->enforce_all = false;
                g->check = false;
                if (!g->n_enforce && !all)
                        continue;
                pthread_mutex_unlock(&g->lock);
                reconcile(g, all);
                pthread_mutex_lock(&g->lock);
        }
        /* Jobs still queued are answered as cancelled. */
        while (g->head) {
                job *j = g->head;
                g->head = j->next;
                j->rc = -ECANCELED;
                snprintf(j->err, sizeof(j->err), "vigild is stopping");
                j->done = true;
                job_unref_locked(j);
        }
        g->tail = NULL;
        pthread_cond_broadcast(&g->done);
        pthread_mutex_unlock(&g->lock);
        return NULL;
}

int gpuconfig_start(gpuconfig *g)
{
        int r;

        pthread_mutex_lock(&g->lock);
        if (!g->started) {
                r = -pthread_create(&g->thread, NULL, gpuconfig_main, g);
                g->started = r == 0;
        } else {
                r = 0;
        }
        pthread_mutex_unlock(&g->lock);
        return r;
}

void gpuconfig_stop(gpuconfig *g)
{
        bool started;

        if (!g)
                return;
        pthread_mutex_lock(&g->lock);
        started = g->started;
        g->stopping = true;
        pthread_cond_broadcast(&g->wake);
        pthread_mutex_unlock(&g->lock);
        if (!started)
                return;
        pthread_join(g->thread, NULL);
        pthread_mutex_lock(&g->lock);
        g->started = false;
        pthread_mutex_unlock(&g->lock);
}

gpuconfig *gpuconfig_free(gpuconfig *g)
{
        if (!g)
                return NULL;
        gpuconfig_stop(g);
        free(g->enforce);
        pthread_cond_destroy(&g->wake);
        pthread_cond_destroy(&g->done);
        pthread_mutex_destroy(&g->lock);
        free(g);
        return NULL;
}

int gpuconfig_set_enforce(gpuconfig *g, const gpucfg_desired *v, size_t n)
{
        gpucfg_desired *c;

        n = MIN(n, (size_t)GPUCFG_ENFORCE_MAX);
        c = desired_copy(v, n);
        if (n && !c)
                return -ENOMEM;
        pthread_mutex_lock(&g->lock);
        free(g->enforce);
        g->enforce = c;
        g->n_enforce = n;
        g->enforce_all = true;
        if (!n)
                memset(g->drift, -1, sizeof(g->drift));
        pthread_cond_signal(&g->wake);
        pthread_mutex_unlock(&g->lock);
        return 0;
}

void gpuconfig_on_sweep(gpuconfig *g, enum field_tier tier)
{
        if (!g || tier != TIER_SLOW)
                return;
        /* trylock: the sampler never waits for the worker's lock holder */
        if (pthread_mutex_trylock(&g->lock) != 0)
                return;
        if (g->n_enforce) {
                g->check = true;
                pthread_cond_signal(&g->wake);
        }
        pthread_mutex_unlock(&g->lock);
}

/* Queue j and wait for it (GPUCFG_WAIT_US at most). */
static int submit(gpuconfig *g, job *j, json_t **out, char *err, size_t errlen)
{
        int64_t deadline = time_mono_us() + GPUCFG_WAIT_US;
        int rc;

        j->refs = 2;
        pthread_mutex_lock(&g->lock);
        if (!g->started || g->stopping) {
                pthread_mutex_unlock(&g->lock);
                free(j);
                snprintf(err, errlen, "the GPU configuration worker is not running");
                return -EAGAIN;
        }
        if (g->tail)
                g->tail->next = j;
        else
                g->head = j;
        g->tail = j;
        pthread_cond_signal(&g->wake);
        while (!j->done) {
                int64_t left = deadline - time_mono_us();
                struct timespec ts;
                if (left <= 0)
                        break;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_sec += (time_t)(left / 1000000);
                ts.tv_nsec += (long)(left % 1000000) * 1000;
                if (ts.tv_nsec >= 1000000000L) {
                        ts.tv_sec++;
                        ts.tv_nsec -= 1000000000L;
                }
                pthread_cond_timedwait(&g->done, &g->lock, &ts);
        }
        if (!j->done) {
                snprintf(err, errlen, "the GPU configuration worker did not answer within %llds",
                         (long long)(GPUCFG_WAIT_US / 1000000));
                rc = -ETIMEDOUT;
        } else {
                rc = j->rc;
                if (rc < 0)
                        snprintf(err, errlen, "%s", j->err);
                else
                        *out = TAKE_PTR(j->out);
        }
        job_unref_locked(j);
        pthread_mutex_unlock(&g->lock);
        return rc;
}

static job *job_new(enum job_kind kind, unsigned gpu)
{
        job *j = calloc(1, sizeof(*j));

        if (j) {
                j->kind = kind;
                j->gpu = gpu;
        }
        return j;
}

int gpuconfig_get(gpuconfig *g, unsigned gpu, json_t **out)
{
        char err[256];
        job *j = job_new(JOB_GET, gpu);

        if (!j)
                return -ENOMEM;
        return submit(g, j, out, err, sizeof(err));
}

int gpuconfig_set(gpuconfig *g, unsigned gpu, const gpucfg_value values[BCFG_COUNT], bool dry_run,
                  json_t **out, char *err, size_t errlen)
{
        job *j = job_new(JOB_SET, gpu);

        if (!j)
                return -ENOMEM;
        memcpy(j->values, values, sizeof(j->values));
        j->dry_run = dry_run;
        return submit(g, j, out, err, errlen);
}

int gpuconfig_restore(gpuconfig *g, unsigned gpu, unsigned mask, bool dry_run, json_t **out,
                      char *err, size_t errlen)
{
        job *j = job_new(JOB_RESTORE, gpu);

        if (!j)
                return -ENOMEM;
        j->mask = mask;
        j->dry_run = dry_run;
        return submit(g, j, out, err, errlen);
}

int gpuconfig_render_metrics(gpuconfig *g, buf *b, bool openmetrics, gpuconfig_label_fn labels,
                             void *userdata)
{
        /* OpenMetrics names a counter family without _total; its samples keep it */
        const char *fam =
            openmetrics ? "vigil_gpu_config_enforcements" : "vigil_gpu_config_enforcements_total";
        signed char drift[SAMPLER_MAX_GPUS][BCFG_COUNT];
        uint64_t ok, bad;
        bool head = false;

        if (!g)
                return 0;
        pthread_mutex_lock(&g->lock);
        memcpy(drift, g->drift, sizeof(drift));
        ok = g->enforced;
        bad = g->enforce_failed;
        pthread_mutex_unlock(&g->lock);
        for (unsigned i = 0; i < SAMPLER_MAX_GPUS; i++)
                for (unsigned s = 0; s < BCFG_COUNT; s++) {
                        if (drift[i][s] < 0)
                                continue;
                        if (!head) {
                                buf_printf(b, "# HELP vigil_gpu_config_drift 1 when the setting "
                                              "differs from config.enforce\n"
                                              "# TYPE vigil_gpu_config_drift gauge\n");
                                head = true;
                        }
                        buf_printf(b, "vigil_gpu_config_drift{");
                        labels(userdata, i, b);
                        buf_printf(b, ",setting=\"%s\"} %d\n", gpucfg_setting_name(s), drift[i][s]);
                }
        buf_printf(b,
                   "# HELP %s Settings config.enforce applied, by result\n"
                   "# TYPE %s counter\n"
                   "vigil_gpu_config_enforcements_total{result=\"applied\"} %" PRIu64 "\n"
                   "vigil_gpu_config_enforcements_total{result=\"refused\"} %" PRIu64 "\n",
                   fam, fam, ok, bad);
        return b->err;
}
