/* policy.c — policy actions: when an incident opens, every policy whose condition matches runs its
 * actions in order (log, alert, exec, set_power_limit, reset_gpu, diag), subject to the policy's rate
 * limit per GPU and its dry-run switch. Every run is recorded (the store's health_actions table
 * and the log), dry runs and refusals included. Mutating actions go through the backend's guarded
 * mutators; the tests exercise them against the fake NVML only.
 *
 * The actions run on the runner's own worker thread (policy_submit queues a copy of the incident):
 * a hook that sleeps or a reset that takes seconds never holds the health thread, and no lock is
 * held while an action runs, so policy_set (a reload, main thread) swaps the table at once. A run
 * takes a copy of the matching policies under the lock. */
#include "health-internal.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/macros.h"
#include "common/redact.h"
#include "common/sparse.h"
#include "common/spawn.h"
#include "common/vtime.h"
#ifdef VIGIL_HAVE_STORE
#include "store/store.h"
#endif

#define EXEC_OUTPUT_MAX 4096 /* bytes of a hook's output kept */
#define RATE_SLOTS      64   /* remembered runs per (policy, GPU) */
#define QUEUE_MAX       256  /* incidents waiting for the worker */

typedef struct rate_state {
        int64_t runs[RATE_SLOTS]; /* realtime usec of recent runs (ring) */
        unsigned next;            /* ring position */
} rate_state;

typedef struct policy_job {
        incident in; /* copy of the freshly opened incident */
        int64_t now; /* realtime usec it was taken */
} policy_job;

struct policy_runner {
        pthread_mutex_t lock;                                       /* guards (L) */
        health_policy policies[HEALTH_MAX_POLICIES];                /* (L) */
        size_t n;                                                   /* (L) */
        backend *backend;                                           /* borrowed */
        cache *cache;                                               /* borrowed */
        struct store *store;                                        /* borrowed, may be NULL */
        rate_state rate[HEALTH_MAX_POLICIES][SAMPLER_MAX_GPUS + 1]; /* (L) last slot: node */
        _Atomic uint64_t total;                                     /* actions run */
        pthread_cond_t wake;                                        /* work queued or stop (L) */
        policy_job *queue;                                          /* ring of QUEUE_MAX (L) */
        size_t q_head, q_len;                                       /* (L) */
        bool stopping, started, busy;                               /* (L) busy: a job runs */
        pthread_t thread;                                           /* the worker */
        health_diag_fn diag;                                        /* diag action; may be NULL */
        void *diag_userdata;                                        /* for diag */
};

bool policy_matches(const char *cond, const incident *in)
{
        if (!strcmp(cond, "*") || !strcmp(cond, in->condition))
                return true;
        if (!strcmp(cond, "critical"))
                return in->severity == HEALTH_FAIL;
        if (!strcmp(cond, "warning"))
                return in->severity >= HEALTH_WARN;
        if (!strcmp(cond, "xid"))
                return in->xid != 0;
        return false;
}

int policy_new(const health_config *cfg, backend *be, cache *ca, struct store *st,
               policy_runner **ret)
{
        policy_runner *p = sparse_zalloc(sizeof(*p)); /* rate[][]: per policy and GPU */

        if (!p)
                return -ENOMEM;
        p->queue = sparse_zalloc(QUEUE_MAX * sizeof(*p->queue)); /* written as jobs queue */
        if (!p->queue) {
                sparse_free(p, sizeof(*p));
                return -ENOMEM;
        }
        pthread_mutex_init(&p->lock, NULL);
        pthread_cond_init(&p->wake, NULL);
        p->n = MIN(cfg->n_policies, (size_t)HEALTH_MAX_POLICIES);
        if (p->n)
                memcpy(p->policies, cfg->policies, p->n * sizeof(health_policy));
        p->backend = be;
        p->cache = ca;
        p->store = st;
        *ret = p;
        return 0;
}

void policy_set(policy_runner *p, const health_policy *v, size_t n)
{
        n = MIN(n, (size_t)HEALTH_MAX_POLICIES);
        pthread_mutex_lock(&p->lock);
        /* A policy that did not change keeps its rate-limit history; a changed one starts over. */
        for (size_t i = 0; i < n; i++)
                if (i >= p->n || memcmp(&p->policies[i], &v[i], sizeof(v[i])) != 0)
                        memset(p->rate[i], 0, sizeof(p->rate[i]));
        if (n)
                memcpy(p->policies, v, n * sizeof(*v));
        p->n = n;
        pthread_mutex_unlock(&p->lock);
}

void policy_set_diag(policy_runner *p, health_diag_fn fn, void *userdata)
{
        p->diag = fn;
        p->diag_userdata = userdata;
}

static void *policy_main(void *arg)
{
        policy_runner *p = arg;

        pthread_setname_np(pthread_self(), "vg-policy");
        pthread_mutex_lock(&p->lock);
        for (;;) {
                policy_job job;
                while (!p->q_len && !p->stopping)
                        pthread_cond_wait(&p->wake, &p->lock);
                if (p->stopping)
                        break;
                job = p->queue[p->q_head];
                p->q_head = (p->q_head + 1) % QUEUE_MAX;
                p->q_len--;
                p->busy = true;
                pthread_mutex_unlock(&p->lock);
                policy_run(p, &job.in, job.now);
                pthread_mutex_lock(&p->lock);
                p->busy = false;
                pthread_cond_broadcast(&p->wake);
        }
        pthread_mutex_unlock(&p->lock);
        return NULL;
}

int policy_start(policy_runner *p)
{
        int r;

        if (p->started)
                return 0;
        r = pthread_create(&p->thread, NULL, policy_main, p);
        if (r)
                return -r;
        p->started = true;
        return 0;
}

int policy_submit(policy_runner *p, const incident *in, int64_t now_us)
{
        pthread_mutex_lock(&p->lock);
        if (!p->n) { /* nothing could match */
                pthread_mutex_unlock(&p->lock);
                return 0;
        }
        if (!p->started) { /* no worker (tests, or a start that failed): run here */
                pthread_mutex_unlock(&p->lock);
                policy_run(p, in, now_us);
                return 0;
        }
        if (p->q_len == QUEUE_MAX) {
                pthread_mutex_unlock(&p->lock);
                log_error("policy",
                          "%d incidents wait for policy actions: skipping incident %" PRIu64
                          " (%s)",
                          QUEUE_MAX, in->id, in->condition);
                return -ENOBUFS;
        }
        p->queue[(p->q_head + p->q_len) % QUEUE_MAX] = (policy_job){*in, now_us};
        p->q_len++;
        pthread_cond_signal(&p->wake);
        pthread_mutex_unlock(&p->lock);
        return 0;
}

void policy_drain(policy_runner *p)
{
        pthread_mutex_lock(&p->lock);
        while (p->started && (p->q_len || p->busy))
                pthread_cond_wait(&p->wake, &p->lock);
        pthread_mutex_unlock(&p->lock);
}

policy_runner *policy_free(policy_runner *p)
{
        if (!p)
                return NULL;
        if (p->started) {
                pthread_mutex_lock(&p->lock);
                p->stopping = true;
                pthread_cond_broadcast(&p->wake);
                pthread_mutex_unlock(&p->lock);
                pthread_join(p->thread, NULL); /* an action in progress ends first */
        }
        pthread_cond_destroy(&p->wake);
        pthread_mutex_destroy(&p->lock);
        sparse_free(p->queue, QUEUE_MAX * sizeof(*p->queue));
        sparse_free(p, sizeof(*p));
        return NULL;
}

uint64_t policy_actions_total(policy_runner *p)
{
        return p->total;
}

#ifdef VIGIL_HAVE_STORE
typedef struct rec_ctx {
        const incident *in;
        const char *action, *result, *detail;
        bool dry_run;
} rec_ctx;

static int rec_fn(sqlite3 *db, void *arg)
{
        rec_ctx *c = arg;
        sqlite3_stmt *st = NULL;
        int r = 0;

        if (sqlite3_prepare_v2(
                db,
                "INSERT INTO health_actions (ts, incident_id, gpu, condition, action, "
                "dry_run, result, detail) VALUES (?,?,?,?,?,?,?,"
                "vigil_seal(?, 'health_actions.detail'))",
                -1, &st, NULL) != SQLITE_OK)
                return -EIO;
        sqlite3_bind_int64(st, 1, time_real_us());
        sqlite3_bind_int64(st, 2, (sqlite3_int64)c->in->id);
        sqlite3_bind_int(st, 3, c->in->gpu);
        sqlite3_bind_text(st, 4, c->in->condition, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 5, c->action, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 6, c->dry_run);
        sqlite3_bind_text(st, 7, c->result, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 8, c->detail, -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE)
                r = store_errno(sqlite3_errcode(db));
        sqlite3_finalize(st);
        return r;
}

typedef struct actions_req {
        uint64_t incident; /* id */
        json_t *rows;      /* out: array, oldest first */
} actions_req;

static int actions_fn(sqlite3 *db, void *arg)
{
        actions_req *q = arg;
        sqlite3_stmt *st = NULL;
        int rc;

        if (sqlite3_prepare_v2(db,
                               "SELECT ts, action, dry_run, result, vigil_open(detail, "
                               "'health_actions.detail') FROM health_actions WHERE incident_id = ? "
                               "ORDER BY id LIMIT 1000",
                               -1, &st, NULL) != SQLITE_OK)
                return -EIO;
        sqlite3_bind_int64(st, 1, (sqlite3_int64)q->incident);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                const char *d = (const char *)sqlite3_column_text(st, 4);
                json_array_append_new(q->rows,
                                      json_pack("{s:f, s:s, s:b, s:s, s:s}", "time",
                                                (double)sqlite3_column_int64(st, 0) / 1e6, "action",
                                                (const char *)sqlite3_column_text(st, 1) ?: "",
                                                "dry_run", sqlite3_column_int(st, 2), "result",
                                                (const char *)sqlite3_column_text(st, 3) ?: "",
                                                "detail", d ?: ""));
        }
        sqlite3_finalize(st);
        return rc == SQLITE_DONE ? 0 : store_errno(rc);
}

int policy_actions_json(struct store *st, uint64_t incident_id, json_t **ret)
{
        actions_req q = {incident_id, json_array()};
        int r;

        if (!q.rows)
                return -ENOMEM;
        r = st ? store_read(st, actions_fn, &q) : -ENOENT;
        if (r < 0) {
                json_decref(q.rows);
                return r;
        }
        *ret = q.rows;
        return 0;
}
#else
int policy_actions_json(struct store *st, uint64_t incident_id, json_t **ret)
{
        (void)st;
        (void)incident_id;
        (void)ret;
        return -ENOENT;
}
#endif

static void record(policy_runner *p, const incident *in, enum health_action a, bool dry_run,
                   const char *result, const char *detail_raw)
{
        char detail[HEALTH_URL_MAX + 256]; /* exec commands may hold credentials: never shown */

        redact_text(detail_raw, detail, sizeof(detail));
        p->total++;
        log_info("policy", "%s%s on incident %" PRIu64 " (%s, %s%d): %s%s%s",
                 dry_run ? "dry run: " : "", health_action_name(a), in->id, in->condition,
                 in->gpu >= 0 ? "GPU " : "node ", in->gpu, result, detail[0] ? ": " : "", detail);
#ifdef VIGIL_HAVE_STORE
        if (p->store) {
                rec_ctx c = {in, health_action_name(a), result, detail, dry_run};
                int r = store_write(p->store, rec_fn, &c);
                if (r < 0)
                        log_error("policy", "failed to record the action: %s", strerror(-r));
        }
#endif
}

/* Run cmd with sh -c, the incident JSON on stdin; output captured (bounded); the hook's whole
 * process group killed after timeout. Returns the exit status (>= 0) or -errno; out gets the
 * output. */
static int run_exec(const char *cmd, const char *input, int64_t timeout_us, char *out,
                    size_t outlen)
{
        const char *const argv[] = {"/bin/sh", "-c", cmd, NULL};
        spawn_opts o = {.argv = argv,
                        .input = input,
                        .input_len = strlen(input),
                        .out = out,
                        .outlen = outlen,
                        .timeout_us = timeout_us,
                        .quiet = true,
                        .new_pgrp = true};
        int ws = 0, r;

        out[0] = '\0';
        r = spawn_run(&o, &ws);
        return r < 0 ? r : spawn_exit_code(ws);
}

/* (L) */
static bool rate_allows(policy_runner *p, size_t pi, const incident *in, int64_t now)
{
        const health_policy *po = &p->policies[pi];
        rate_state *rs =
            &p->rate[pi][in->gpu >= 0 && in->gpu < SAMPLER_MAX_GPUS ? in->gpu : SAMPLER_MAX_GPUS];
        unsigned used = 0, cap = MIN(po->rate_count, (unsigned)RATE_SLOTS);

        if (!po->rate_count)
                return true;
        for (unsigned i = 0; i < RATE_SLOTS; i++)
                if (rs->runs[i] && now - rs->runs[i] < po->rate_window_us)
                        used++;
        if (used >= cap)
                return false;
        rs->runs[rs->next] = now;
        rs->next = (rs->next + 1) % RATE_SLOTS;
        return true;
}

static void run_action(policy_runner *p, const health_policy *po, const incident *in,
                       enum health_action a)
{
        char detail[EXEC_OUTPUT_MAX + 128] = "";

        switch (a) {
        case HEALTH_ACT_LOG:
                log_warn("policy", "incident %" PRIu64 " %s on %s%d: %s", in->id, in->condition,
                         in->gpu >= 0 ? "GPU " : "node ", in->gpu, in->summary);
                record(p, in, a, po->dry_run, "done", "");
                return;
        case HEALTH_ACT_ALERT:
                /* Every incident is pushed to every configured target; naming alert in a policy
                 * documents the intent and is recorded. */
                record(p, in, a, po->dry_run, "done", "sent through the alert outbox");
                return;
        case HEALTH_ACT_EXEC: {
                json_t *j = incident_json(in);
                char *input = j ? json_dumps(j, JSON_COMPACT) : NULL;
                char out[EXEC_OUTPUT_MAX];
                int r;
                json_decref(j);
                if (po->dry_run || !po->exec[0]) {
                        record(p, in, a, po->dry_run, po->exec[0] ? "skipped" : "refused",
                               po->exec[0] ? po->exec : "no exec command configured");
                        free(input);
                        return;
                }
                r = run_exec(po->exec, input ? input : "{}", po->exec_timeout_us, out, sizeof(out));
                free(input);
                if (r == -ETIMEDOUT)
                        snprintf(detail, sizeof(detail), "timed out; output: %s", out);
                else
                        snprintf(detail, sizeof(detail), "exit %d; output: %s", r, out);
                record(p, in, a, false, r == 0 ? "done" : "failed", detail);
                return;
        }
        case HEALTH_ACT_SET_POWER_LIMIT: {
                field_value v;
                unsigned mw;
                int r;
                if (in->gpu < 0 || !p->backend) {
                        record(p, in, a, po->dry_run, "refused", "not a GPU incident");
                        return;
                }
                if (cache_latest(p->cache, (unsigned)in->gpu, FLD_POWER_LIMIT_DEFAULT, &v, NULL) <
                        0 ||
                    v.status != 0 || v.d <= 0) {
                        record(p, in, a, po->dry_run, "refused", "default power limit unknown");
                        return;
                }
                mw = (unsigned)(v.d * 1000.0 * po->power_limit_percent / 100.0);
                snprintf(detail, sizeof(detail), "%u mW (%u%% of %.0f W)", mw,
                         po->power_limit_percent, v.d);
                if (po->dry_run) {
                        record(p, in, a, true, "skipped", detail);
                        return;
                }
                r = backend_set_power_limit(p->backend, (unsigned)in->gpu, mw);
                if (r < 0)
                        snprintf(detail + strlen(detail), sizeof(detail) - strlen(detail), ": %s",
                                 strerror(-r));
                record(p, in, a, false, r < 0 ? "failed" : "done", detail);
                return;
        }
        case HEALTH_ACT_RESET_GPU: {
                /* A reset kills whatever runs on the GPU: only an idle GPU is reset, and a real
                 * one only when the policy says so (nvidia-smi --gpu-reset, see backend.h). */
                char err[256] = "";
                unsigned procs = 0;
                int r;
                if (in->gpu < 0 || !p->backend) {
                        record(p, in, a, po->dry_run, "refused", "not a GPU incident");
                        return;
                }
                if (!backend_is_fake(p->backend) && !po->allow_reset_on_real_gpu) {
                        record(p, in, a, po->dry_run, "refused",
                               "resetting a real GPU needs allow_reset_on_real_gpu: true in the "
                               "policy");
                        return;
                }
                r = backend_compute_processes(p->backend, (unsigned)in->gpu, &procs);
                if (r < 0) {
                        snprintf(detail, sizeof(detail),
                                 "cannot tell whether compute processes run: %s", strerror(-r));
                        record(p, in, a, po->dry_run, "refused", detail);
                        return;
                }
                if (procs) {
                        snprintf(detail, sizeof(detail), "%u compute processes", procs);
                        record(p, in, a, po->dry_run, "skipped", detail);
                        return;
                }
                snprintf(detail, sizeof(detail), "GPU %d, no compute process", in->gpu);
                if (po->dry_run) {
                        record(p, in, a, true, "skipped", detail);
                        return;
                }
                r = backend_reset_gpu(p->backend, (unsigned)in->gpu, err, sizeof(err));
                if (r < 0)
                        snprintf(detail + strlen(detail), sizeof(detail) - strlen(detail), ": %s",
                                 err[0] ? err : strerror(-r));
                record(p, in, a, false, r < 0 ? "failed" : "done", detail);
                return;
        }
        case HEALTH_ACT_DIAG: {
                /* Starts the run and returns: the run id goes to the action log, the results to
                 * GET /api/v1/diag/{id}. A node incident, or diag_gpus: all, tests every GPU. */
                char id[64] = "", err[512] = "";
                int gpu = po->diag_gpus == 1 ? -1 : in->gpu;
                int r;
                if (gpu >= 0)
                        snprintf(detail, sizeof(detail), "level %u on GPU %d", po->diag_level, gpu);
                else
                        snprintf(detail, sizeof(detail), "level %u on every GPU", po->diag_level);
                if (!p->diag) {
                        record(p, in, a, po->dry_run, "refused", "diagnostics are not available");
                        return;
                }
                if (po->dry_run) {
                        record(p, in, a, true, "skipped", detail);
                        return;
                }
                r = p->diag(p->diag_userdata, (int)po->diag_level, gpu, in->id, in->condition, id,
                            sizeof(id), err, sizeof(err));
                if (r < 0) {
                        snprintf(detail + strlen(detail), sizeof(detail) - strlen(detail), ": %s",
                                 err[0] ? err : strerror(-r));
                        record(p, in, a, false, r == -EBUSY ? "skipped" : "failed", detail);
                        return;
                }
                snprintf(detail + strlen(detail), sizeof(detail) - strlen(detail),
                         ": run %s started", id);
                record(p, in, a, false, "done", detail);
                return;
        }
        case HEALTH_ACT_COUNT:
                break;
        }
}

void policy_run(policy_runner *p, const incident *in, int64_t now_us)
{
        for (size_t i = 0;; i++) {
                health_policy po;
                bool allowed;
                pthread_mutex_lock(&p->lock);
                if (i >= p->n) {
                        pthread_mutex_unlock(&p->lock);
                        break;
                }
                po = p->policies[i];
                if (!policy_matches(po.condition, in)) {
                        pthread_mutex_unlock(&p->lock);
                        continue;
                }
                allowed = rate_allows(p, i, in, now_us);
                pthread_mutex_unlock(&p->lock);
                if (!allowed) {
                        log_info("policy", "policy %zu ('%s') rate-limited for incident %" PRIu64,
                                 i, po.condition, in->id);
                        continue;
                }
                /* no lock held: an exec hook may run for its whole timeout */
                for (int a = 0; a < HEALTH_ACT_COUNT; a++)
                        if (po.actions & (1u << a))
                                run_action(p, &po, in, (enum health_action)a);
        }
}
