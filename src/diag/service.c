/* service.c — diagnostic runs in the daemon (service.h): a supervisor thread per run, progress
 * appended to the run's JSON as the worker reports it, the last runs kept for GET. The HTTP
 * threads only ever copy JSON out under the lock; the supervisor thread is the only writer. */
#include "service.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/macros.h"
#include "diag.h"
#include "store/store.h"

struct drun {
        char id[40];                   /* "d-<epoch>-<n>" */
        json_t *run;                   /* the run as GET shows it; under s->lock */
        diag_opts opts;                /* what runs */
        char *params[DIAG_MAX_PARAMS]; /* owned copies behind opts.params */
        char cfgp[DIAG_CONFIG_MAX][DIAG_CONFIG_PARAM_LEN]; /* the diag: section, behind
                                                              opts.config */
        atomic_bool cancel;                                /* set by DELETE */
        atomic_bool stored;                                /* finished and in the store */
        bool done;                                         /* the supervisor finished */
        struct diag_service *s;
};

struct diag_service {
        pthread_mutex_t lock;
        char *worker, *nvml_lib, *scenario;
        bool simulate;
        store *store;                         /* borrowed; NULL = memory only */
        diag_config cfg;                      /* the diag: section (under lock) */
        struct drun *runs[DIAG_SERVICE_KEEP]; /* ring, newest at (next - 1) */
        size_t next;                          /* runs started */
        struct drun *active;                  /* running, or NULL */
        struct drun *last_done;               /* the last run that finished (stored or not) */
        pthread_t thread;                     /* of active (or of the last run, until joined) */
        bool joinable;
};

static char *dup_or_null(const char *s)
{
        return s ? strdup(s) : NULL;
}

int diag_service_new(const diag_service_opts *o, diag_service **ret)
{
        diag_service *s = calloc(1, sizeof(*s));

        if (!s)
                return -ENOMEM;
        pthread_mutex_init(&s->lock, NULL);
        s->worker = dup_or_null(o->worker);
        s->nvml_lib = dup_or_null(o->nvml_lib);
        s->scenario = dup_or_null(o->scenario);
        s->simulate = o->simulate;
        s->store = o->store;
        if (o->config)
                s->cfg = *o->config;
        else
                diag_config_defaults(&s->cfg);
        diag_service_configure(s, &s->cfg); /* the retention, on what an earlier run left */
        *ret = s;
        return 0;
}

static void drun_free(struct drun *d)
{
        if (!d)
                return;
        json_decref(d->run);
        for (size_t i = 0; i < d->opts.nparams; i++)
                free(d->params[i]);
        free(d);
}

diag_service *diag_service_free(diag_service *s)
{
        if (!s)
                return NULL;
        pthread_mutex_lock(&s->lock);
        if (s->active)
                atomic_store(&s->active->cancel, true);
        pthread_mutex_unlock(&s->lock);
        if (s->joinable)
                pthread_join(s->thread, NULL);
        for (size_t i = 0; i < DIAG_SERVICE_KEEP; i++)
                drun_free(s->runs[i]);
        free(s->worker);
        free(s->nvml_lib);
        free(s->scenario);
        pthread_mutex_destroy(&s->lock);
        free(s);
        return NULL;
}

static void on_event(const json_t *ev, void *ud)
{
        struct drun *d = ud;
        const char *kind = json_string_value(json_object_get(ev, "event"));

        pthread_mutex_lock(&d->s->lock);
        if (kind && strcmp(kind, "result") == 0) {
                json_t *c = json_deep_copy(ev);
                json_object_del(c, "event");
                json_array_append_new(json_object_get(d->run, "results"), c);
        } else if (kind && strcmp(kind, "start") == 0) {
                json_object_set(d->run, "gpus", json_object_get(ev, "gpus"));
        } else if (kind && strcmp(kind, "begin") == 0) {
                json_object_set(d->run, "current", json_object_get(ev, "test"));
        }
        pthread_mutex_unlock(&d->s->lock);
}

struct retention {
        unsigned count;     /* runs kept; 0 = no limit */
        int64_t max_age_us; /* usec; 0 = no limit */
};

/* Drop the stored runs beyond the retention (a store_fn). */
static int retention_fn(sqlite3 *db, void *ctx)
{
        const struct retention *k = ctx;
        sqlite3_stmt *st = NULL;
        int rc;

        if (k->max_age_us > 0) {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                rc = sqlite3_prepare_v2(db, "DELETE FROM diag_runs WHERE finished_us < ?", -1, &st,
                                        NULL);
                if (rc != SQLITE_OK)
                        return store_errno(rc);
                sqlite3_bind_int64(
                    st, 1, (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000 - k->max_age_us);
                rc = sqlite3_step(st);
                sqlite3_finalize(st);
                if (rc != SQLITE_DONE)
                        return store_errno(rc);
        }
        if (k->count > 0) {
                rc = sqlite3_prepare_v2(db,
                                        "DELETE FROM diag_runs WHERE id NOT IN (SELECT id FROM "
                                        "diag_runs ORDER BY finished_us DESC LIMIT ?)",
                                        -1, &st, NULL);
                if (rc != SQLITE_OK)
                        return store_errno(rc);
                sqlite3_bind_int64(st, 1, k->count);
                rc = sqlite3_step(st);
                sqlite3_finalize(st);
                if (rc != SQLITE_DONE)
                        return store_errno(rc);
        }
        return 0;
}

struct persist {
        const char *id, *status, *result, *text;
        int level;
        int64_t started_us, finished_us;
        struct retention keep;
};

static int persist_fn(sqlite3 *db, void *ctx)
{
        struct persist *p = ctx;
        sqlite3_stmt *st = NULL;
        int rc;

        rc = sqlite3_prepare_v2(db,
                                "INSERT OR REPLACE INTO diag_runs (id, level, status, result, "
                                "started_us, finished_us, run) VALUES (?, ?, ?, ?, ?, ?, ?)",
                                -1, &st, NULL);
        if (rc != SQLITE_OK)
                return store_errno(rc);
        sqlite3_bind_text(st, 1, p->id, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 2, p->level);
        sqlite3_bind_text(st, 3, p->status, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, p->result, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 5, p->started_us);
        sqlite3_bind_int64(st, 6, p->finished_us);
        sqlite3_bind_text(st, 7, p->text, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE)
                return store_errno(rc);
        return retention_fn(db, &p->keep);
}

/* Keep a finished run in the store (the supervisor thread, after the run). */
static void persist(diag_service *s, json_t *run, struct retention keep)
{
        _cleanup_free_ char *text = json_dumps(run, JSON_COMPACT);
        struct persist p = {
            .id = json_string_value(json_object_get(run, "id")) ?: "",
            .status = json_string_value(json_object_get(run, "status")) ?: "",
            .result = json_string_value(json_object_get(run, "result")) ?: "",
            .text = text,
            .level = (int)json_integer_value(json_object_get(run, "level")),
            .started_us = (int64_t)(json_number_value(json_object_get(run, "started")) * 1e6),
            .finished_us = (int64_t)(json_number_value(json_object_get(run, "finished")) * 1e6),
        };

        p.keep = keep;
        if (s->store && text)
                store_write(s->store, persist_fn, &p);
}

struct load {
        const char *id;
        json_t *run;
};

static int load_fn(sqlite3 *db, void *ctx)
{
        struct load *l = ctx;
        sqlite3_stmt *st = NULL;
        int rc = sqlite3_prepare_v2(db, "SELECT run FROM diag_runs WHERE id = ?", -1, &st, NULL);

        if (rc != SQLITE_OK)
                return store_errno(rc);
        sqlite3_bind_text(st, 1, l->id, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW) {
                const char *t = (const char *)sqlite3_column_text(st, 0);
                l->run = t ? json_loads(t, 0, NULL) : NULL;
        }
        sqlite3_finalize(st);
        return l->run ? 0 : -ENOENT;
}

static void *supervise_thread(void *arg)
{
        struct drun *d = arg;
        diag_service *s = d->s;
        char path[4096];
        json_t *final = NULL;
        struct retention keep;
        diag_supervise_opts so = {
            .opts = &d->opts, .cancel = &d->cancel, .on_event = on_event, .userdata = d};
        int r;

        if (s->worker)
                snprintf(path, sizeof(path), "%s", s->worker);
        else if (diag_find_worker(path, sizeof(path)) < 0)
                path[0] = '\0';
        so.worker = path;
        r = path[0] ? diag_supervise(&so, &final) : -ENOENT;
        pthread_mutex_lock(&s->lock);
        if (r < 0) {
                json_object_set_new(d->run, "status", json_string("failed"));
                json_object_set_new(d->run, "result", json_string("fail"));
                json_object_set_new(
                    d->run, "reason",
                    json_string(r == -ENOENT ? "vigil-diag not found" : "cannot start vigil-diag"));
        } else {
                /* the supervisor's view is complete (it adds hung/crashed tests): take it */
                json_object_set(final, "id", json_object_get(d->run, "id"));
                json_object_set(final, "started", json_object_get(d->run, "started"));
                json_object_set(final, "origin", json_object_get(d->run, "origin"));
                json_decref(d->run);
                d->run = final;
        }
        d->done = true;
        s->active = NULL;
        s->last_done = d; /* listed from memory until stored */
        keep = (struct retention){s->cfg.retention_count, s->cfg.retention_max_age_us};
        final = json_deep_copy(d->run);
        pthread_mutex_unlock(&s->lock);
        if (final)
                persist(s, final, keep);
        json_decref(final);
        /* without the lock: diag_service_start may be joining this thread while holding it */
        atomic_store(&d->stored, true);
        return NULL;
}

int diag_service_configure(diag_service *s, const diag_config *c)
{
        struct retention k = {c->retention_count, c->retention_max_age_us};

        pthread_mutex_lock(&s->lock);
        s->cfg = *c;
        pthread_mutex_unlock(&s->lock);
        return s->store ? store_write(s->store, retention_fn, &k) : 0;
}

int diag_service_start(diag_service *s, const json_t *body, char *id, size_t idlen, char *err,
                       size_t errlen)
{
        return diag_service_start_from(s, body, "api", id, idlen, err, errlen);
}

int diag_service_start_from(diag_service *s, const json_t *body, const char *origin, char *id,
                            size_t idlen, char *err, size_t errlen)
{
        json_t *lv = json_object_get(body, "level"), *gpus = json_object_get(body, "gpus"),
               *params = json_object_get(body, "params"), *v;
        struct drun *d;
        struct timespec ts;
        size_t i;
        int r;

        if (!json_is_object(body) || !json_is_integer(lv) || json_integer_value(lv) < 1 ||
            json_integer_value(lv) > 3) {
                snprintf(err, errlen, "'level' must be 1, 2 or 3");
                return -EINVAL;
        }
        d = calloc(1, sizeof(*d));
        if (!d)
                return -ENOMEM;
        d->s = s;
        d->opts.level = (int)json_integer_value(lv);
        d->opts.force = json_is_true(json_object_get(body, "force"));
        d->opts.simulate = s->simulate;
        d->opts.scenario = s->scenario;
        d->opts.nvml_lib = s->nvml_lib;
        if (gpus && !json_is_array(gpus))
                goto bad_gpus;
        json_array_foreach(gpus, i, v)
        {
                if (!json_is_integer(v) || json_integer_value(v) < 0 ||
                    json_integer_value(v) > 4095 || d->opts.ngpus >= DIAG_MAX_GPUS)
                        goto bad_gpus;
                d->opts.gpus[d->opts.ngpus++] = (unsigned)json_integer_value(v);
        }
        if (params && !json_is_array(params)) {
                snprintf(err, errlen, "'params' must be an array of \"test.key=value\" strings");
                drun_free(d);
                return -EINVAL;
        }
        json_array_foreach(params, i, v)
        {
                const char *p = json_string_value(v);
                if (!p || d->opts.nparams >= DIAG_MAX_PARAMS) {
                        snprintf(err, errlen, "'params' must be at most %d strings",
                                 DIAG_MAX_PARAMS);
                        drun_free(d);
                        return -EINVAL;
                }
                r = diag_param_check(p, err, errlen);
                if (r < 0) {
                        drun_free(d);
                        return r;
                }
                d->params[d->opts.nparams] = strdup(p);
                if (!d->params[d->opts.nparams]) {
                        drun_free(d);
                        return -ENOMEM;
                }
                d->opts.params[d->opts.nparams] = d->params[d->opts.nparams];
                d->opts.nparams++;
        }

        pthread_mutex_lock(&s->lock);
        if (s->active) {
                snprintf(err, errlen, "diagnostic run '%s' is in progress", s->active->id);
                pthread_mutex_unlock(&s->lock);
                drun_free(d);
                return -EBUSY;
        }
        if (s->joinable) {
                pthread_join(s->thread, NULL); /* the last run ended: its thread is done */
                s->joinable = false;
        }
        /* the configuration as it is now: a reload during the run does not change it */
        d->opts.nconfig = diag_config_params(&s->cfg, d->cfgp, DIAG_CONFIG_MAX);
        for (i = 0; i < d->opts.nconfig; i++)
                d->opts.config[i] = d->cfgp[i];
        clock_gettime(CLOCK_REALTIME, &ts);
        snprintf(d->id, sizeof(d->id), "d-%lld-%zu", (long long)ts.tv_sec, s->next + 1);
        d->run =
            json_pack("{s:s, s:i, s:s, s:f, s:[], s:[], s:s}", "id", d->id, "level", d->opts.level,
                      "status", "running", "started", (double)ts.tv_sec + ts.tv_nsec * 1e-9,
                      "results", "gpus", "origin", origin ? origin : "api");
        r = pthread_create(&s->thread, NULL, supervise_thread, d);
        if (r != 0) {
                pthread_mutex_unlock(&s->lock);
                drun_free(d);
                snprintf(err, errlen, "cannot start a thread");
                return -r;
        }
        s->joinable = true;
        drun_free(s->runs[s->next % DIAG_SERVICE_KEEP]);
        s->runs[s->next % DIAG_SERVICE_KEEP] = d;
        s->next++;
        s->active = d;
        snprintf(id, idlen, "%s", d->id);
        pthread_mutex_unlock(&s->lock);
        return 0;

bad_gpus:
        snprintf(err, errlen, "'gpus' must be an array of GPU indexes");
        drun_free(d);
        return -EINVAL;
}

static struct drun *find(diag_service *s, const char *id)
{
        for (size_t i = 0; i < DIAG_SERVICE_KEEP; i++)
                if (s->runs[i] && strcmp(s->runs[i]->id, id) == 0)
                        return s->runs[i];
        return NULL;
}

int diag_service_get(diag_service *s, const char *id, json_t **ret)
{
        struct drun *d;
        int r = -ENOENT;

        pthread_mutex_lock(&s->lock);
        d = find(s, id);
        if (d) {
                *ret = json_deep_copy(d->run);
                r = *ret ? 0 : -ENOMEM;
        }
        pthread_mutex_unlock(&s->lock);
        if (r == -ENOENT && s->store) {
                struct load l = {.id = id};
                if (store_read(s->store, load_fn, &l) == 0) {
                        *ret = l.run;
                        r = 0;
                }
        }
        return r;
}

int diag_service_cancel(diag_service *s, const char *id)
{
        struct drun *d;
        int r = -ENOENT;

        pthread_mutex_lock(&s->lock);
        d = find(s, id);
        if (d) {
                r = d->done ? -EALREADY : 0;
                atomic_store(&d->cancel, true);
        }
        pthread_mutex_unlock(&s->lock);
        return r;
}

static const char *const list_keys[] = {"id",      "level",    "status", "result",
                                        "started", "finished", "origin"};

static json_t *summary(const json_t *run)
{
        json_t *o = json_object();

        for (size_t i = 0; o && i < ARRAY_SIZE(list_keys); i++) {
                json_t *v = json_object_get(run, list_keys[i]);
                if (v)
                        json_object_set(o, list_keys[i], v);
        }
        return o;
}

struct list_req {
        const char *skip[2]; /* runs listed from memory (in progress, or not stored yet) */
        size_t offset, limit;
        json_t *runs; /* appended to */
        int64_t total;
};

static int list_fn(sqlite3 *db, void *ctx)
{
        struct list_req *q = ctx;
        sqlite3_stmt *st = NULL;
        int rc = sqlite3_prepare_v2(db, "SELECT count(*) FROM diag_runs WHERE id NOT IN (?, ?)", -1,
                                    &st, NULL);

        if (rc != SQLITE_OK)
                return store_errno(rc);
        sqlite3_bind_text(st, 1, q->skip[0], -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, q->skip[1], -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW)
                q->total = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        rc = sqlite3_prepare_v2(db,
                                "SELECT run FROM diag_runs WHERE id NOT IN (?, ?) ORDER BY "
                                "started_us DESC, id DESC LIMIT ? OFFSET ?",
                                -1, &st, NULL);
        if (rc != SQLITE_OK)
                return store_errno(rc);
        sqlite3_bind_text(st, 1, q->skip[0], -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, q->skip[1], -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)q->limit);
        sqlite3_bind_int64(st, 4, (sqlite3_int64)q->offset);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                const char *t = (const char *)sqlite3_column_text(st, 0);
                json_t *run = t ? json_loads(t, 0, NULL) : NULL;
                if (run)
                        json_array_append_new(q->runs, summary(run));
                json_decref(run);
        }
        sqlite3_finalize(st);
        return rc == SQLITE_DONE ? 0 : store_errno(rc);
}

json_t *diag_service_list(diag_service *s, size_t offset, size_t limit)
{
        json_t *arr = json_array();
        struct list_req q = {.runs = arr, .skip = {"", ""}};
        char ids[2][sizeof(((struct drun *)0)->id)] = {"", ""};
        size_t skip = offset, mem = 0;

        if (!arr)
                return NULL;
        pthread_mutex_lock(&s->lock);
        if (s->store) {
                /* newest first: the run in progress, then the last finished one while it is
                 * not stored yet (its flag is read before the store is: listed once either
                 * way), then the store */
                struct drun *m[2] = {s->active, s->last_done};
                for (size_t i = 0; i < 2; i++) {
                        if (!m[i] || (i == 1 && atomic_load(&m[i]->stored)))
                                continue;
                        snprintf(ids[mem], sizeof(ids[mem]), "%s", m[i]->id);
                        q.skip[mem] = ids[mem];
                        mem++;
                        if (skip > 0)
                                skip--;
                        else if (json_array_size(arr) < limit)
                                json_array_append_new(arr, summary(m[i]->run));
                }
        } else {
                for (size_t k = 0; k < DIAG_SERVICE_KEEP && k < s->next; k++) {
                        if (k >= offset && json_array_size(arr) < limit)
                                json_array_append_new(
                                    arr,
                                    summary(s->runs[(s->next - 1 - k) % DIAG_SERVICE_KEEP]->run));
                        q.total++;
                }
        }
        pthread_mutex_unlock(&s->lock);
        if (s->store) {
                q.offset = skip;
                q.limit = limit - json_array_size(arr);
                if (store_read(s->store, list_fn, &q) < 0) {
                        json_decref(arr);
                        return NULL;
                }
                q.total += (int64_t)mem;
        }
        return json_pack("{s:o, s:I, s:I, s:I}", "runs", arr, "total", (json_int_t)q.total,
                         "offset", (json_int_t)offset, "limit", (json_int_t)limit);
}

double diag_service_last(diag_service *s,
                         void (*fn)(const char *test, int gpu, int verdict, void *ud), void *ud)
{
        double t = 0;

        pthread_mutex_lock(&s->lock);
        for (size_t k = 0; k < DIAG_SERVICE_KEEP && k < s->next; k++) {
                struct drun *d = s->runs[(s->next - 1 - k) % DIAG_SERVICE_KEEP];
                size_t i;
                json_t *r;
                if (!d->done)
                        continue;
                json_array_foreach(json_object_get(d->run, "results"), i, r)
                {
                        json_t *g = json_object_get(r, "gpu");
                        int v = diag_verdict_parse(json_string_value(json_object_get(r, "result")));
                        fn(json_string_value(json_object_get(r, "test")) ?: "?",
                           json_is_integer(g) ? (int)json_integer_value(g) : -1,
                           v < 0 ? DIAG_FAIL : v, ud);
                }
                t = json_number_value(json_object_get(d->run, "finished"));
                break;
        }
        pthread_mutex_unlock(&s->lock);
        return t;
}
