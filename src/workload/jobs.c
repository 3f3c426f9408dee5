/* jobs.c — the job statistics service (jobs.h): the running jobs under one lock, the jobs thread
 * (vg-jobs) that reads the sampler after each sweep and accounts the readings, and the store
 * (workload_jobs) that keeps every job across restarts. The accounting itself is jobs_core.c. */
#include "jobs.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/macros.h"
#include "common/vtime.h"
#include "jobs-internal.h"
#include "sampler/sampler.h"
#include "store/store.h"

#define DONE_KEPT 64 /* finished records kept in memory (all of them without a store) */
/* An ended job waits this long for the readings after its end (the value of each counter at the
 * end is interpolated from them); then it is final as it is. */
#define FINAL_WAIT_US (60 * INT64_C(1000000))

struct jobs {
        jobs_options opt;     /* sampler and store borrowed */
        pthread_mutex_t lock; /* everything below */
        pthread_cond_t cond;  /* a sweep is pending, or stop */
        pthread_t thread;     /* vg-jobs, when opt.sampler is set */
        bool thread_started;
        bool stop;                  /* the thread ends */
        bool pending;               /* a sweep was announced */
        bool pending_slow;          /* ... and one of them was a slow sweep */
        job *run[JOBS_MAX_RUNNING]; /* running jobs, owned */
        size_t n_run;
        job *fin[JOBS_MAX_RUNNING]; /* ended, waiting for the readings after the end; owned */
        size_t n_fin;
        bool closing;          /* jobs_free: write the ending jobs as they are */
        json_t *done;          /* finished records (with "_state"), oldest first, <= DONE_KEPT;
                                  every record in or out is a copy: none is shared by threads */
        json_t *unsaved;       /* records whose write failed, retried at the next tick */
        int64_t retention_due; /* usec since epoch of the next retention pass */
};

static int64_t now_us(const jobs *j)
{
        return j->opt.clock_real_us ? j->opt.clock_real_us() : time_real_us();
}

bool jobs_id_valid(const char *id)
{
        size_t n = id ? strlen(id) : 0;

        if (n == 0 || n >= JOBS_ID_MAX - 8 ||
            !((id[0] >= 'a' && id[0] <= 'z') || (id[0] >= 'A' && id[0] <= 'Z') ||
              (id[0] >= '0' && id[0] <= '9')))
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = id[i];
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '.' || c == '_' || c == '-'))
                        return false;
        }
        return true;
}

static unsigned gpu_count(const jobs *j)
{
        return j->opt.sampler ? sampler_gpu_count(j->opt.sampler) : j->opt.gpu_count;
}

/* ---- the store ---- */

struct rec {
        char *text;        /* the record, JSON; owned */
        const char *id;    /* borrowed from the parsed record */
        const char *kind;  /* borrowed */
        const char *state; /* borrowed */
        int64_t start_us, end_us, updated_us, seq;
        char gpus[JOBS_MAX_GPUS * 4 + 2]; /* ",0,1," for the GPU filter */
};

struct write_ctx {
        struct rec *r;
        size_t n;
        int64_t cutoff_us; /* finished before this are deleted; 0 = no retention pass */
        int64_t deleted;   /* rows deleted */
};

static int write_fn(sqlite3 *db, void *ctx)
{
        struct write_ctx *w = ctx;
        sqlite3_stmt *st = NULL;
        int rc;

        rc = sqlite3_prepare_v2(
            db,
            "INSERT INTO workload_jobs (id, kind, state, started_us, ended_us, updated_us, seq, "
            "gpus, record) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET "
            "kind = excluded.kind, state = excluded.state, started_us = excluded.started_us, "
            "ended_us = excluded.ended_us, updated_us = excluded.updated_us, seq = excluded.seq, "
            "gpus = excluded.gpus, record = excluded.record WHERE excluded.seq > "
            "workload_jobs.seq",
            -1, &st, NULL);
        if (rc != SQLITE_OK)
                return store_errno(rc);
        for (size_t i = 0; i < w->n; i++) {
                const struct rec *r = &w->r[i];
                sqlite3_reset(st);
                sqlite3_bind_text(st, 1, r->id, -1, SQLITE_STATIC);
                sqlite3_bind_text(st, 2, r->kind, -1, SQLITE_STATIC);
                sqlite3_bind_text(st, 3, r->state, -1, SQLITE_STATIC);
                sqlite3_bind_int64(st, 4, r->start_us);
                sqlite3_bind_int64(st, 5, r->end_us);
                sqlite3_bind_int64(st, 6, r->updated_us);
                sqlite3_bind_int64(st, 7, r->seq);
                sqlite3_bind_text(st, 8, r->gpus, -1, SQLITE_STATIC);
                sqlite3_bind_text(st, 9, r->text, -1, SQLITE_STATIC);
                rc = sqlite3_step(st);
                if (rc != SQLITE_DONE) {
                        sqlite3_finalize(st);
                        return store_errno(rc);
                }
        }
        sqlite3_finalize(st);
        if (w->cutoff_us > 0) {
                rc = sqlite3_prepare_v2(db,
                                        "DELETE FROM workload_jobs WHERE state = 'finished' AND "
                                        "ended_us < ?",
                                        -1, &st, NULL);
                if (rc != SQLITE_OK)
                        return store_errno(rc);
                sqlite3_bind_int64(st, 1, w->cutoff_us);
                rc = sqlite3_step(st);
                sqlite3_finalize(st);
                if (rc != SQLITE_DONE)
                        return store_errno(rc);
                w->deleted = sqlite3_changes(db);
        }
        return 0;
}

static void rec_fill(struct rec *r, const json_t *o)
{
        const json_t *g;
        size_t i, n = 1;

        r->id = json_string_value(json_object_get(o, "id"));
        r->kind = json_string_value(json_object_get(o, "kind"));
        r->state = json_string_value(json_object_get(o, "state"));
        r->start_us = json_integer_value(json_object_get(o, "start_us"));
        r->end_us = json_integer_value(json_object_get(o, "end_us"));
        r->updated_us = json_integer_value(json_object_get(o, "updated_us"));
        r->seq = json_integer_value(json_object_get(o, "seq"));
        r->gpus[0] = ',';
        r->gpus[1] = '\0';
        json_array_foreach(json_object_get(o, "gpus"), i, g)
        {
                int k = snprintf(r->gpus + n, sizeof(r->gpus) - n, "%lld,",
                                 (long long)json_integer_value(json_object_get(g, "gpu")));
                if (k < 0 || (size_t)k >= sizeof(r->gpus) - n)
                        break;
                n += (size_t)k;
        }
        r->text = json_dumps(o, JSON_COMPACT);
}

/* Write records (an array of job records) and, when cutoff_us > 0, apply the retention. Not
 * under the lock: the write waits for a commit. 0 or -errno. */
static int persist(jobs *j, const json_t *recs, int64_t cutoff_us)
{
        size_t n = json_array_size(recs), i;
        struct write_ctx w = {.cutoff_us = cutoff_us};
        const json_t *o;
        int r = 0;

        if (!j->opt.store || (n == 0 && cutoff_us <= 0))
                return 0;
        if (n) {
                w.r = calloc(n, sizeof(*w.r));
                if (!w.r)
                        return -ENOMEM;
        }
        json_array_foreach(recs, i, o)
        {
                rec_fill(&w.r[w.n], o);
                if (!w.r[w.n].text || !w.r[w.n].id || !w.r[w.n].kind || !w.r[w.n].state) {
                        free(w.r[w.n].text);
                        r = -ENOMEM;
                        break;
                }
                w.n++;
        }
        if (r == 0)
                r = store_write(j->opt.store, write_fn, &w);
        if (r == 0 && w.deleted > 0)
                log_info("workload", "deleted %lld finished jobs older than the retention",
                         (long long)w.deleted);
        for (i = 0; i < w.n; i++)
                free(w.r[i].text);
        free(w.r);
        return r;
}

struct read_ctx {
        const char *id;       /* lookup by id; NULL = list */
        const jobs_filter *f; /* list */
        unsigned limit;
        json_t *out;       /* the record (lookup) or an array of them (list) */
        bool running_only; /* load the running jobs (start) */
};

static int read_fn(sqlite3 *db, void *ctx)
{
        struct read_ctx *c = ctx;
        sqlite3_stmt *st = NULL;
        char gpu[24];
        int rc;

        if (c->running_only)
                rc = sqlite3_prepare_v2(
                    db, "SELECT record FROM workload_jobs WHERE state = 'running'", -1, &st, NULL);
        else if (c->id)
                rc = sqlite3_prepare_v2(db, "SELECT record FROM workload_jobs WHERE id = ?", -1,
                                        &st, NULL);
        else
                rc = sqlite3_prepare_v2(
                    db,
                    "SELECT record FROM workload_jobs WHERE state = 'finished' AND (?1 IS NULL OR "
                    "kind = ?1) AND (?2 IS NULL OR instr(gpus, ?2) > 0) AND ended_us >= ?3 "
                    "ORDER BY started_us DESC LIMIT ?4",
                    -1, &st, NULL);
        if (rc != SQLITE_OK)
                return store_errno(rc);
        if (c->id && !c->running_only) {
                sqlite3_bind_text(st, 1, c->id, -1, SQLITE_STATIC);
        } else if (!c->running_only) {
                if (c->f->kind)
                        sqlite3_bind_text(st, 1, c->f->kind, -1, SQLITE_STATIC);
                if (c->f->gpu >= 0) {
                        snprintf(gpu, sizeof(gpu), ",%d,", c->f->gpu);
                        sqlite3_bind_text(st, 2, gpu, -1, SQLITE_STATIC);
                }
                sqlite3_bind_int64(st, 3, c->f->since_us);
                sqlite3_bind_int64(st, 4, c->limit);
        }
        c->out = c->id && !c->running_only ? NULL : json_array();
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                const char *t = (const char *)sqlite3_column_text(st, 0);
                json_t *o = t ? json_loads(t, 0, NULL) : NULL;
                if (!o)
                        continue; /* a record we cannot read is skipped, not fatal */
                if (c->out)
                        json_array_append_new(c->out, o);
                else
                        c->out = o;
        }
        sqlite3_finalize(st);
        return rc == SQLITE_DONE ? 0 : store_errno(rc);
}

/* A finished record by id: from memory, else from the store. New reference or NULL. */
static json_t *find_done(jobs *j, const char *id)
{
        json_t *o;
        size_t i;
        struct read_ctx c = {.id = id};

        json_array_foreach(j->done, i, o)
        {
                if (!strcmp(json_string_value(json_object_get(o, "id")) ?: "", id))
                        return json_deep_copy(
                            o); /* a copy: records are never shared between threads */
        }
        if (j->opt.store && store_read(j->opt.store, read_fn, &c) == 0)
                return c.out;
        json_decref(c.out);
        return NULL;
}

static void done_add(jobs *j, json_t *rec)
{
        size_t i;
        json_t *o;
        const char *id = json_string_value(json_object_get(rec, "id"));

        json_array_foreach(j->done, i, o)
        {
                if (!strcmp(json_string_value(json_object_get(o, "id")) ?: "", id ?: "")) {
                        json_array_remove(j->done, i);
                        break;
                }
        }
        json_array_append_new(j->done, json_deep_copy(rec));
        while (json_array_size(j->done) > DONE_KEPT)
                json_array_remove(j->done, 0);
}

static void done_remove(jobs *j, const char *id)
{
        size_t i;
        json_t *o;

        json_array_foreach(j->done, i, o)
        {
                if (!strcmp(json_string_value(json_object_get(o, "id")) ?: "", id)) {
                        json_array_remove(j->done, i);
                        return;
                }
        }
}

/* ---- reading the sampler ---- */

static void read_obs(jobs *j, unsigned gpu, jobs_obs *o)
{
        sampler *s = j->opt.sampler;
        sampler_gpu sg;
        sampler_xid xs[ENGINE_MAX_XID_CODES];
        size_t nx;

        memset(o, 0, sizeof(*o));
        if (!s)
                return;
        if (sampler_gpu_get(s, gpu, &sg) < 0 || !sg.up)
                o->state = JOBS_GPU_LOST;
        else if (sg.stuck)
                o->state = JOBS_GPU_UNRESPONSIVE;
        for (unsigned f = 0; o->state == JOBS_GPU_OK && f < JF_COUNT; f++) {
                uint16_t id = jobs_field_id(f);
                const field_meta *m = field_by_id(id);
                sampler_reading rd;
                if (!m || sampler_latest(s, gpu, id, 0, &rd) < 0 || rd.v.status != 0 ||
                    rd.fresh != SAMPLER_FRESH || rd.ts_us <= 0)
                        continue; /* stale or missing: never counted */
                o->f[f].valid = true;
                o->f[f].ts_us = rd.ts_us;
                o->f[f].v = m->type == FT_F64 ? rd.v.d : (double)rd.v.i;
        }
        nx = sampler_xids(s, gpu, xs, ARRAY_SIZE(xs));
        for (size_t i = 0; i < nx && o->n_xids < JOBS_MAX_XIDS; i++) {
                o->xid_code[o->n_xids] = xs[i].code;
                o->xid_count[o->n_xids++] = xs[i].count;
        }
}

/* Account the latest readings in one job now (its start and its stop). Under the lock. */
static void sample_job(jobs *j, job *jb, int64_t now)
{
        jobs_obs o;

        if (!j->opt.sampler)
                return;
        for (size_t i = 0; i < jb->n_gpus; i++) {
                read_obs(j, jb->gpu[i].index, &o);
                job_feed_gpu(&jb->gpu[i], &o, now);
        }
}

static json_t *record(job *jb, int64_t now)
{
        jb->seq++;
        jb->updated_us = now;
        return job_to_json(jb, true);
}

static job *find_running(jobs *j, const char *id, size_t *pos)
{
        for (size_t i = 0; i < j->n_run; i++)
                if (!strcmp(j->run[i]->id, id)) {
                        if (pos)
                                *pos = i;
                        return j->run[i];
                }
        return NULL;
}

static void run_remove(jobs *j, size_t pos)
{
        memmove(&j->run[pos], &j->run[pos + 1], (j->n_run - pos - 1) * sizeof(j->run[0]));
        j->n_run--;
}

static job *find_fin(jobs *j, const char *id, size_t *pos)
{
        for (size_t i = 0; i < j->n_fin; i++)
                if (!strcmp(j->fin[i]->id, id)) {
                        if (pos)
                                *pos = i;
                        return j->fin[i];
                }
        return NULL;
}

static void fin_remove(jobs *j, size_t pos)
{
        memmove(&j->fin[pos], &j->fin[pos + 1], (j->n_fin - pos - 1) * sizeof(j->fin[0]));
        j->n_fin--;
}

/* A job just ended: wait for the readings after its end, or free it when there is none to wait
 * for. Under the lock. */
static void ended(jobs *j, job *jb)
{
        if (!job_final(jb) && j->n_fin < JOBS_MAX_RUNNING)
                j->fin[j->n_fin++] = jb;
        else
                job_free(jb);
}

/* ---- the API ---- */

int jobs_start(jobs *j, const char *id, uint64_t gpu_mask, char *err, size_t errlen)
{
        unsigned n = gpu_count(j);
        int64_t now = now_us(j);
        json_t *prev, *rec = NULL, *recs;
        job *jb = NULL;
        int r;

        if (!jobs_id_valid(id)) {
                snprintf(err, errlen,
                         "invalid job id '%.64s': 1-%d characters of A-Z a-z 0-9 . _ -, starting "
                         "with a letter or digit",
                         id ? id : "", JOBS_ID_MAX - 9);
                return -EINVAL;
        }
        if (n == 0) {
                snprintf(err, errlen, "no GPU to account the job on");
                return -ENODEV;
        }
        if (gpu_mask == 0)
                gpu_mask = n >= 64 ? UINT64_MAX : (UINT64_C(1) << n) - 1;
        for (unsigned i = 0; i < JOBS_MAX_GPUS; i++)
                if ((gpu_mask >> i & 1) && i >= n) {
                        snprintf(err, errlen, "no GPU %u (this node has %u)", i, n);
                        return -EINVAL;
                }
        pthread_mutex_lock(&j->lock);
        if (find_running(j, id, NULL)) {
                pthread_mutex_unlock(&j->lock);
                snprintf(err, errlen, "job '%s' is already running", id);
                return -EEXIST;
        }
        prev = find_done(j, id);
        if (prev) {
                json_decref(prev);
                pthread_mutex_unlock(&j->lock);
                snprintf(err, errlen, "job '%s' exists (finished); choose another id", id);
                return -EEXIST;
        }
        if (j->n_run >= JOBS_MAX_RUNNING) {
                pthread_mutex_unlock(&j->lock);
                snprintf(err, errlen, "too many running jobs (at most %d)", JOBS_MAX_RUNNING);
                return -E2BIG;
        }
        r = job_new(id, JOBS_REGISTERED, now, &jb);
        for (unsigned i = 0; r == 0 && i < JOBS_MAX_GPUS; i++)
                if ((gpu_mask >> i & 1) && !job_add_gpu(jb, i, now))
                        r = -ENOMEM;
        if (r == 0) {
                sample_job(j, jb, now);
                rec = record(jb, now);
                if (!rec)
                        r = -ENOMEM;
        }
        if (r < 0) {
                pthread_mutex_unlock(&j->lock);
                job_free(jb);
                snprintf(err, errlen, "cannot start job '%s': %s", id, strerror(-r));
                return r;
        }
        j->run[j->n_run++] = jb;
        n = (unsigned)jb->n_gpus;
        pthread_mutex_unlock(&j->lock);

        recs = json_pack("[o]", rec);
        r = persist(j, recs, 0);
        json_decref(recs);
        if (r < 0) { /* nothing half-done: the job is not started */
                size_t pos = 0;
                pthread_mutex_lock(&j->lock);
                if (find_running(j, id, &pos) == jb) {
                        run_remove(j, pos);
                        job_free(jb);
                }
                pthread_mutex_unlock(&j->lock);
                snprintf(err, errlen, "cannot store job '%s': %s", id, strerror(-r));
                return r;
        }
        log_info("workload", "job '%s' started on %u GPU(s)", id, n);
        return 0;
}

int jobs_stop(jobs *j, const char *id, char *err, size_t errlen)
{
        int64_t now = now_us(j);
        json_t *rec, *recs, *prev;
        size_t pos = 0;
        job *jb;
        int r;

        pthread_mutex_lock(&j->lock);
        jb = id ? find_running(j, id, &pos) : NULL;
        if (!jb) {
                prev = id ? find_done(j, id) : NULL;
                pthread_mutex_unlock(&j->lock);
                if (prev) {
                        json_decref(prev);
                        snprintf(err, errlen, "job '%s' has already ended", id);
                        return -EEXIST;
                }
                snprintf(err, errlen, "no job '%s'", id ? id : "");
                return -ENOENT;
        }
        sample_job(j, jb, now);
        job_end(jb, now);
        rec = record(jb, now);
        if (!rec) {
                jb->running = true; /* keep it running rather than lose it */
                jb->end_us = 0;
                for (size_t i = 0; i < jb->n_gpus; i++)
                        jb->gpu[i].end_us = 0;
                pthread_mutex_unlock(&j->lock);
                snprintf(err, errlen, "cannot stop job '%s': out of memory", id);
                return -ENOMEM;
        }
        run_remove(j, pos);
        ended(j, jb);
        done_add(j, rec);
        pthread_mutex_unlock(&j->lock);

        recs = json_pack("[O]", rec);
        r = persist(j, recs, 0);
        json_decref(recs);
        if (r < 0) {
                pthread_mutex_lock(&j->lock);
                json_array_append_new(j->unsaved, json_deep_copy(rec));
                pthread_mutex_unlock(&j->lock);
                snprintf(err, errlen, "job '%s' ended, but storing it failed (retried): %s", id,
                         strerror(-r));
        }
        json_decref(rec);
        log_info("workload", "job '%s' stopped", id);
        return r;
}

int jobs_observe(jobs *j, unsigned gpu, const char *kind, const char *id, int64_t now)
{
        enum jobs_kind k;
        char key[JOBS_ID_MAX];
        job *jb;
        jobs_gpu *g;
        jobs_obs o;
        json_t *prev;
        size_t pos = 0;
        int r;

        if (jobs_kind_parse(kind, &k) < 0 || k == JOBS_REGISTERED || !jobs_id_valid(id) ||
            gpu >= JOBS_MAX_GPUS)
                return -EINVAL;
        snprintf(key, sizeof(key), "%s:%s", kind, id);
        pthread_mutex_lock(&j->lock);
        if (k == JOBS_SLURM) {
                /* deploy/slurm's prolog registered this job as "slurm-ID": that job has the exact
                 * boundaries and gets the processes (jobs_process_seen); no second record */
                char reg[JOBS_ID_MAX];

                snprintf(reg, sizeof(reg), "slurm-%s", id);
                if (find_running(j, reg, NULL)) {
                        pthread_mutex_unlock(&j->lock);
                        return 0;
                }
        }
        jb = find_running(j, key, NULL);
        if (!jb && find_fin(j, key, &pos)) { /* ended a moment ago and seen again */
                jb = j->fin[pos];
                fin_remove(j, pos);
                if (j->n_run >= JOBS_MAX_RUNNING) {
                        job_free(jb);
                        pthread_mutex_unlock(&j->lock);
                        return -E2BIG;
                }
                job_resume(jb, now);
                done_remove(j, key);
                j->run[j->n_run++] = jb;
                log_info("workload", "job '%s' seen again, resumed", key);
        }
        if (!jb) {
                if (j->n_run >= JOBS_MAX_RUNNING) {
                        pthread_mutex_unlock(&j->lock);
                        return -E2BIG;
                }
                prev = find_done(j, key);
                r = prev ? job_from_json(prev, &jb) : job_new(key, k, now, &jb);
                json_decref(prev);
                if (r < 0) {
                        pthread_mutex_unlock(&j->lock);
                        return r;
                }
                if (!jb->running) { /* seen again within the retention: the same job */
                        job_resume(jb, now);
                        done_remove(j, key);
                        log_info("workload", "job '%s' seen again, resumed", key);
                } else {
                        log_info("workload", "job '%s' seen on GPU %u, started", key, gpu);
                }
                j->run[j->n_run++] = jb;
        }
        g = job_gpu(jb, gpu);
        if (!g) {
                g = job_add_gpu(jb, gpu, now);
                if (!g) {
                        pthread_mutex_unlock(&j->lock);
                        return -ENOMEM;
                }
                read_obs(j, gpu, &o);
                if (j->opt.sampler)
                        job_feed_gpu(g, &o, now);
        }
        g->last_seen_us = MAX(g->last_seen_us, now);
        jb->last_seen_us = MAX(jb->last_seen_us, now);
        pthread_mutex_unlock(&j->lock);
        return 0;
}

void jobs_process_seen(jobs *j, unsigned gpu, uint32_t pid, const char *kind, const char *id)
{
        char key[JOBS_ID_MAX] = "";

        if (kind && id)
                snprintf(key, sizeof(key), "%s:%s", kind, id);
        pthread_mutex_lock(&j->lock);
        for (size_t i = 0; i < j->n_run; i++) {
                job *jb = j->run[i];
                jobs_gpu *g = job_gpu(jb, gpu);
                if (g && (jb->kind == JOBS_REGISTERED || (key[0] && !strcmp(jb->id, key))))
                        job_gpu_add_pid(g, pid);
        }
        pthread_mutex_unlock(&j->lock);
}

void jobs_feed(jobs *j, unsigned gpu, const jobs_obs *o, int64_t now)
{
        pthread_mutex_lock(&j->lock);
        for (size_t i = 0; i < j->n_run + j->n_fin; i++) {
                job *jb = i < j->n_run ? j->run[i] : j->fin[i - j->n_run];
                jobs_gpu *g = job_gpu(jb, gpu);
                if (g)
                        job_feed_gpu(g, o, now);
        }
        pthread_mutex_unlock(&j->lock);
}

void jobs_tick(jobs *j, int64_t now, bool persist_now)
{
        json_t *recs = json_array(), *o;
        int64_t cutoff = 0;
        size_t i;
        int r;

        if (!recs)
                return;
        pthread_mutex_lock(&j->lock);
        /* automatic jobs not seen for the grace period end */
        for (i = 0; i < j->n_run;) {
                job *jb = j->run[i];
                if (jb->kind != JOBS_REGISTERED && now - jb->last_seen_us > j->opt.grace_us) {
                        job_end(jb, now);
                        o = record(jb, now);
                        if (o) {
                                done_add(j, o);
                                json_array_append_new(recs, o);
                        }
                        log_info("workload", "job '%s' not seen for %llds, ended", jb->id,
                                 (long long)((now - jb->last_seen_us) / 1000000));
                        run_remove(j, i);
                        ended(j, jb);
                        continue;
                }
                if (persist_now && (o = record(jb, now)))
                        json_array_append_new(recs, o);
                i++;
        }
        /* ended jobs whose counters have their value at the end, or that waited long enough */
        for (i = 0; i < j->n_fin;) {
                job *jb = j->fin[i];
                if (!job_final(jb) && !j->closing && now - jb->end_us < FINAL_WAIT_US) {
                        i++;
                        continue;
                }
                o = record(jb, now);
                if (o) {
                        done_add(j, o);
                        json_array_append_new(recs, o);
                }
                fin_remove(j, i);
                job_free(jb);
        }
        json_array_extend(recs, j->unsaved);
        json_array_clear(j->unsaved);
        if (j->opt.retention_us > 0 && now >= j->retention_due) {
                cutoff = now - j->opt.retention_us;
                j->retention_due = now + MIN(j->opt.retention_us / 2, 3600 * INT64_C(1000000));
                json_array_foreach(j->done, i, o)
                {
                        json_int_t end = json_integer_value(json_object_get(o, "end_us"));
                        if (end < cutoff) {
                                json_array_remove(j->done, i);
                                i--;
                        }
                }
        }
        pthread_mutex_unlock(&j->lock);
        r = persist(j, recs, cutoff);
        if (r < 0) {
                log_warn("workload", "failed to store the running jobs: %s", strerror(-r));
                pthread_mutex_lock(&j->lock);
                json_array_foreach(recs, i, o)
                {
                        if (strcmp(json_string_value(json_object_get(o, "state")) ?: "",
                                   "finished") == 0)
                                json_array_append_new(j->unsaved, json_deep_copy(o));
                }
                pthread_mutex_unlock(&j->lock);
        }
        json_decref(recs);
}

void jobs_set_limits(jobs *j, int64_t grace_us, int64_t retention_us)
{
        pthread_mutex_lock(&j->lock);
        j->opt.grace_us = grace_us;
        j->opt.retention_us = retention_us;
        j->retention_due = 0;
        pthread_mutex_unlock(&j->lock);
}

/* ---- reading ---- */

static json_t *public_copy(const json_t *rec)
{
        json_t *c = json_deep_copy(rec), *g;
        size_t i;

        json_array_foreach(json_object_get(c, "gpus"), i, g) json_object_del(g, "_state");
        json_object_del(c, "seq");
        return c;
}

int jobs_get(jobs *j, const char *id, json_t **ret)
{
        job *jb;
        json_t *rec;

        pthread_mutex_lock(&j->lock);
        jb = id ? find_running(j, id, NULL) : NULL;
        if (!jb && id)
                jb = find_fin(j, id, NULL);
        if (jb) {
                rec = job_to_json(jb, false);
                pthread_mutex_unlock(&j->lock);
                if (!rec)
                        return -ENOMEM;
                json_object_del(rec, "seq");
                *ret = rec;
                return 0;
        }
        rec = id ? find_done(j, id) : NULL;
        pthread_mutex_unlock(&j->lock);
        if (!rec)
                return -ENOENT;
        *ret = public_copy(rec);
        json_decref(rec);
        return *ret ? 0 : -ENOMEM;
}

static bool on_gpu(const json_t *rec, int gpu)
{
        const json_t *g;
        size_t i;

        if (gpu < 0)
                return true;
        json_array_foreach(json_object_get(rec, "gpus"), i, g)
        {
                if (json_integer_value(json_object_get(g, "gpu")) == gpu)
                        return true;
        }
        return false;
}

static int by_start_desc(const void *a, const void *b)
{
        json_int_t x = json_integer_value(json_object_get(*(json_t *const *)a, "start_us"));
        json_int_t y = json_integer_value(json_object_get(*(json_t *const *)b, "start_us"));
        return x < y ? 1 : x > y ? -1 : 0;
}

int jobs_list(jobs *j, const jobs_filter *f, json_t **ret)
{
        unsigned limit = f->limit ? f->limit : JOBS_LIST_DEFAULT;
        enum jobs_kind k;
        json_t *all = json_array(), *out, *o, **v;
        bool want_run = !f->state || !strcmp(f->state, "running");
        bool want_done = !f->state || !strcmp(f->state, "finished");
        size_t i, n;
        int r = 0;

        if (!all)
                return -ENOMEM;
        if ((f->state && !want_run && !want_done) ||
            (f->kind && jobs_kind_parse(f->kind, &k) < 0) || limit > JOBS_LIST_MAX) {
                json_decref(all);
                return -EINVAL;
        }
        pthread_mutex_lock(&j->lock);
        for (i = 0; want_run && i < j->n_run; i++) {
                job *jb = j->run[i];
                if (f->kind && strcmp(f->kind, jobs_kind_name(jb->kind)))
                        continue;
                o = job_to_json(jb, false);
                if (o && on_gpu(o, f->gpu))
                        json_array_append(all, o);
                json_decref(o);
        }
        if (want_done && !j->opt.store)
                json_array_foreach(j->done, i, o)
                {
                        if ((f->kind &&
                             strcmp(f->kind,
                                    json_string_value(json_object_get(o, "kind")) ?: "")) ||
                            !on_gpu(o, f->gpu) ||
                            json_integer_value(json_object_get(o, "end_us")) < f->since_us)
                                continue;
                        json_array_append_new(all, json_deep_copy(o));
                }
        pthread_mutex_unlock(&j->lock);
        if (want_done && j->opt.store) {
                struct read_ctx c = {.f = f, .limit = limit};
                r = store_read(j->opt.store, read_fn, &c);
                if (r == 0)
                        json_array_extend(all, c.out);
                json_decref(c.out);
                if (r < 0) {
                        json_decref(all);
                        return r;
                }
        }
        /* newest first, then the summary of each */
        n = json_array_size(all);
        v = calloc(n ? n : 1, sizeof(*v));
        out = json_array();
        if (!v || !out) {
                free(v);
                json_decref(out);
                json_decref(all);
                return -ENOMEM;
        }
        for (i = 0; i < n; i++)
                v[i] = json_array_get(all, i);
        qsort(v, n, sizeof(*v), by_start_desc);
        for (i = 0; i < n && i < limit; i++)
                json_array_append_new(out, job_summary(v[i]));
        free(v);
        json_decref(all);
        *ret = json_pack("{s:o, s:I}", "jobs", out, "count", (json_int_t)json_array_size(out));
        return *ret ? 0 : -ENOMEM;
}

/* ---- the thread ---- */

static void *jobs_thread(void *arg)
{
        jobs *j = arg;
        unsigned n = gpu_count(j);
        jobs_obs *obs = calloc(n ? n : 1, sizeof(*obs));

        pthread_mutex_lock(&j->lock);
        while (!j->stop) {
                uint64_t mask = 0;
                bool slow;
                int64_t now;

                while (!j->stop && !j->pending)
                        pthread_cond_wait(&j->cond, &j->lock);
                if (j->stop)
                        break;
                slow = j->pending_slow;
                j->pending = j->pending_slow = false;
                for (size_t i = 0; i < j->n_run + j->n_fin; i++) {
                        const job *jb = i < j->n_run ? j->run[i] : j->fin[i - j->n_run];
                        for (size_t g = 0; g < jb->n_gpus; g++)
                                if (jb->gpu[g].index < MIN(n, JOBS_MAX_GPUS))
                                        mask |= UINT64_C(1) << jb->gpu[g].index;
                }
                pthread_mutex_unlock(&j->lock);

                now = now_us(j);
                for (unsigned g = 0; obs && g < MIN(n, JOBS_MAX_GPUS); g++)
                        if (mask >> g & 1) {
                                read_obs(j, g, &obs[g]);
                                jobs_feed(j, g, &obs[g], now);
                        }
                jobs_tick(j, now, slow);
                pthread_mutex_lock(&j->lock);
        }
        pthread_mutex_unlock(&j->lock);
        free(obs);
        return NULL;
}

void jobs_on_sweep(jobs *j, enum field_tier tier)
{
        bool work;

        if (!j || (tier != TIER_FAST && tier != TIER_SLOW))
                return;
        pthread_mutex_lock(&j->lock);
        /* idle (no job, nothing to retry, no retention pass due): no wake-up of the thread */
        work = j->n_run || j->n_fin || json_array_size(j->unsaved) ||
               (tier == TIER_SLOW && j->opt.retention_us > 0 && now_us(j) >= j->retention_due);
        if (work) {
                j->pending = true;
                if (tier == TIER_SLOW)
                        j->pending_slow = true;
                pthread_cond_signal(&j->cond);
        }
        pthread_mutex_unlock(&j->lock);
}

/* Resume the jobs that were running when the store was last written. */
static int load_running(jobs *j, char *err, size_t errlen)
{
        struct read_ctx c = {.running_only = true};
        json_t *o;
        size_t i;
        int r;

        if (!j->opt.store)
                return 0;
        r = store_read(j->opt.store, read_fn, &c);
        if (r < 0) {
                snprintf(err, errlen, "cannot read the running jobs from the store: %s",
                         strerror(-r));
                return r;
        }
        json_array_foreach(c.out, i, o)
        {
                job *jb;
                if (j->n_run >= JOBS_MAX_RUNNING || job_from_json(o, &jb) < 0) {
                        log_warn("workload", "skipping a stored job record that cannot be read");
                        continue;
                }
                /* the time vigild was away is a gap; the sampler's XID counts start again */
                job_open_gap(jb, jb->updated_us, "vigild_not_running");
                for (size_t g = 0; g < jb->n_gpus; g++)
                        for (unsigned x = 0; x < jb->gpu[g].n_xids; x++) {
                                jobs_counter *k = &jb->gpu[g].xids[x].c;
                                if (k->have) {
                                        k->acc += k->last - k->first;
                                        k->first = k->last = 0;
                                }
                        }
                j->run[j->n_run++] = jb;
                log_info("workload", "job '%s' was running at the last stop; resumed with a gap",
                         jb->id);
        }
        json_decref(c.out);
        return 0;
}

int jobs_new(const jobs_options *opt, jobs **ret, char *err, size_t errlen)
{
        jobs *j = calloc(1, sizeof(*j));
        pthread_condattr_t ca;
        int r;

        if (!j)
                return -ENOMEM;
        j->opt = *opt;
        pthread_mutex_init(&j->lock, NULL);
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&j->cond, &ca);
        pthread_condattr_destroy(&ca);
        j->done = json_array();
        j->unsaved = json_array();
        if (!j->done || !j->unsaved) {
                jobs_free(j);
                return -ENOMEM;
        }
        r = load_running(j, err, errlen);
        if (r < 0) {
                jobs_free(j);
                return r;
        }
        if (opt->sampler) {
                r = -pthread_create(&j->thread, NULL, jobs_thread, j);
                if (r < 0) {
                        snprintf(err, errlen, "cannot start the jobs thread: %s", strerror(-r));
                        jobs_free(j);
                        return r;
                }
                pthread_setname_np(j->thread, "vg-jobs");
                j->thread_started = true;
        }
        *ret = j;
        return 0;
}

jobs *jobs_free(jobs *j)
{
        if (!j)
                return NULL;
        if (j->thread_started) {
                pthread_mutex_lock(&j->lock);
                j->stop = true;
                pthread_cond_signal(&j->cond);
                pthread_mutex_unlock(&j->lock);
                pthread_join(j->thread, NULL);
        }
        j->closing = true;
        if (j->done)
                jobs_tick(j, now_us(j), true); /* running jobs stay running: a restart resumes */
        for (size_t i = 0; i < j->n_run; i++)
                job_free(j->run[i]);
        for (size_t i = 0; i < j->n_fin; i++)
                job_free(j->fin[i]);
        json_decref(j->done);
        json_decref(j->unsaved);
        pthread_cond_destroy(&j->cond);
        pthread_mutex_destroy(&j->lock);
        free(j);
        return NULL;
}
