/* workload.c — the reader thread ("vg-workload") and the per-GPU copy readers get. Each read
 * asks the backend for every answering GPU's processes, then reads each PID's cgroup under
 * workload.proc_root. Attribution is read again every time, not cached by PID: a PID reused by
 * another container is attributed to its new owner at the next read, and a process that exited
 * between NVML's list and the /proc read is kept with owner_status -ENOENT (NVML still listed it).
 * The copy is swapped in whole per GPU under the lock; readers copy it out. */
#include "workload.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/macros.h"
#include "common/vtime.h"
#include "sampler/sampler.h"

typedef struct wl_gpu {
        int status;              /* 0, -ENODATA (not read), -ENODEV, -EOPNOTSUPP, -errno */
        int64_t ts_us;           /* usec since epoch of the read */
        workload_process *procs; /* owned; n entries */
        size_t n;
        uint64_t last_seen_us; /* utilisation samples already seen (backend_processes) */
} wl_gpu;

struct workload {
        workload_options opt; /* copy; proc_root owned below */
        char *proc_root;      /* owned */
        unsigned n_gpus;      /* GPUs the sampler found */
        wl_gpu *gpus;         /* n_gpus, under lock */
        pthread_mutex_t lock; /* guards gpus[].status/ts_us/procs/n and stats */
        pthread_cond_t cond;  /* wakes the reader */
        bool wake;            /* a slow sweep asked for a read */
        bool stop;            /* the thread must end */
        bool running;         /* thread started */
        pthread_t thread;
        workload_stats stats;     /* under lock */
        backend_process *scratch; /* max_processes entries, reader thread only */
};

const char *workload_owner_kind_name(enum workload_owner_kind k)
{
        switch (k) {
        case WL_OWNER_POD:
                return "pod";
        case WL_OWNER_SLURM:
                return "slurm";
        case WL_OWNER_UNIT:
                return "unit";
        case WL_OWNER_DOCKER:
                return "docker";
        case WL_OWNER_NONE:
        default:
                return "none";
        }
}

int workload_new(const workload_options *opt, workload **ret)
{
        _cleanup_free_ workload *w = NULL;

        if (!opt || !opt->backend || !opt->sampler || !opt->proc_root || !opt->proc_root[0] ||
            opt->max_processes < 1 || opt->max_processes > BACKEND_PROC_MAX || opt->interval_us < 0)
                return -EINVAL;
        w = calloc(1, sizeof(*w));
        if (!w)
                return -ENOMEM;
        w->opt = *opt;
        w->n_gpus = sampler_gpu_count(opt->sampler);
        w->proc_root = strdup(opt->proc_root);
        w->gpus = calloc(w->n_gpus ? w->n_gpus : 1, sizeof(*w->gpus));
        w->scratch = calloc(opt->max_processes, sizeof(*w->scratch));
        if (!w->proc_root || !w->gpus || !w->scratch) {
                free(w->proc_root);
                free(w->gpus);
                free(w->scratch);
                return -ENOMEM;
        }
        w->opt.proc_root = w->proc_root;
        for (unsigned i = 0; i < w->n_gpus; i++)
                w->gpus[i].status = -ENODATA;
        pthread_mutex_init(&w->lock, NULL);
        pthread_cond_init(&w->cond, NULL);
        *ret = TAKE_PTR(w);
        return 0;
}

/* Read one GPU into a fresh array; swap it in. */
static void read_gpu(workload *w, unsigned gi, uint64_t *dropped, uint64_t *errors)
{
        wl_gpu *g = &w->gpus[gi];
        backend_proc_list list;
        workload_process *procs = NULL;
        sampler_gpu sg;
        uint64_t last_seen;
        int r;

        pthread_mutex_lock(&w->lock);
        last_seen = g->last_seen_us;
        pthread_mutex_unlock(&w->lock);

        if (sampler_gpu_get(w->opt.sampler, gi, &sg) < 0 || !sg.up) {
                r = -ENODEV; /* never ask NVML about a lost GPU; the sampler re-attaches it */
        } else {
                r = backend_processes(w->opt.backend, gi, &last_seen, w->scratch,
                                      w->opt.max_processes, &list);
        }
        if (r == 0 && list.n) {
                procs = calloc(list.n, sizeof(*procs));
                if (!procs)
                        r = -ENOMEM;
        }
        if (r == 0) {
                for (size_t i = 0; i < list.n; i++) {
                        workload_process *p = &procs[i];
                        p->gpu = gi;
                        p->p = w->scratch[i];
                        p->owner_status =
                            workload_read_owner(w->proc_root, p->p.pid, &p->owner, p->cgroup,
                                                sizeof(p->cgroup), p->comm, sizeof(p->comm));
                        if (p->owner_status < 0)
                                memset(&p->owner, 0, sizeof(p->owner));
                }
                *dropped += list.dropped;
        } else if (r != -ENODEV && r != -EOPNOTSUPP) {
                (*errors)++;
        }

        pthread_mutex_lock(&w->lock);
        if (r == 0) {
                free(g->procs);
                g->procs = procs;
                g->n = list.n;
                g->last_seen_us = last_seen;
        } else {
                free(g->procs); /* an old list is never shown as current */
                g->procs = NULL;
                g->n = 0;
        }
        g->status = r;
        g->ts_us = time_real_us();
        pthread_mutex_unlock(&w->lock);
}

static void read_all(workload *w)
{
        int64_t t0 = time_mono_us();
        uint64_t dropped = 0, errors = 0;

        for (unsigned i = 0; i < w->n_gpus; i++)
                read_gpu(w, i, &dropped, &errors);
        pthread_mutex_lock(&w->lock);
        w->stats.reads++;
        w->stats.dropped += dropped;
        w->stats.errors += errors;
        w->stats.last_duration_s = (double)(time_mono_us() - t0) / USEC_PER_SEC;
        w->stats.last_us = time_real_us();
        pthread_mutex_unlock(&w->lock);
        if (dropped)
                log_debug("workload", "left out %llu processes beyond workload.max_processes",
                          (unsigned long long)dropped);
}

static void *reader(void *arg)
{
        workload *w = arg;

        pthread_setname_np(pthread_self(), "vg-workload");
        pthread_mutex_lock(&w->lock);
        while (!w->stop) {
                if (w->opt.interval_us > 0) {
                        struct timespec ts;
                        int64_t until;
                        clock_gettime(CLOCK_REALTIME, &ts);
                        until = (int64_t)ts.tv_sec * USEC_PER_SEC + ts.tv_nsec / 1000 +
                                w->opt.interval_us;
                        ts.tv_sec = until / USEC_PER_SEC;
                        ts.tv_nsec = (long)(until % USEC_PER_SEC) * 1000;
                        while (!w->stop && !w->wake &&
                               pthread_cond_timedwait(&w->cond, &w->lock, &ts) == 0)
                                ;
                } else {
                        while (!w->stop && !w->wake)
                                pthread_cond_wait(&w->cond, &w->lock);
                }
                if (w->stop)
                        break;
                w->wake = false;
                pthread_mutex_unlock(&w->lock);
                read_all(w);
                pthread_mutex_lock(&w->lock);
        }
        pthread_mutex_unlock(&w->lock);
        return NULL;
}

int workload_start(workload *w)
{
        int r;

        if (!w || w->running)
                return -EINVAL;
        w->wake = true; /* read once at start */
        r = pthread_create(&w->thread, NULL, reader, w);
        if (r)
                return -r;
        w->running = true;
        return 0;
}

void workload_stop(workload *w)
{
        if (!w || !w->running)
                return;
        pthread_mutex_lock(&w->lock);
        w->stop = true;
        pthread_cond_signal(&w->cond);
        pthread_mutex_unlock(&w->lock);
        pthread_join(w->thread, NULL);
        w->running = false;
}

workload *workload_free(workload *w)
{
        if (!w)
                return NULL;
        workload_stop(w);
        for (unsigned i = 0; i < w->n_gpus; i++)
                free(w->gpus[i].procs);
        free(w->gpus);
        free(w->scratch);
        free(w->proc_root);
        pthread_cond_destroy(&w->cond);
        pthread_mutex_destroy(&w->lock);
        free(w);
        return NULL;
}

void workload_on_sweep(workload *w, enum field_tier tier)
{
        if (!w || tier != TIER_SLOW || w->opt.interval_us > 0)
                return;
        pthread_mutex_lock(&w->lock);
        w->wake = true;
        pthread_cond_signal(&w->cond);
        pthread_mutex_unlock(&w->lock);
}

int workload_gpu_processes(workload *w, unsigned gpu, workload_process **ret, size_t *n,
                           int64_t *ts_us)
{
        workload_process *copy = NULL;
        wl_gpu *g;
        int r;

        if (!w || !ret || !n)
                return -EINVAL;
        if (gpu >= w->n_gpus)
                return -ENOENT;
        g = &w->gpus[gpu];
        pthread_mutex_lock(&w->lock);
        r = g->status;
        if (r == 0 && g->n) {
                copy = malloc(g->n * sizeof(*copy));
                if (copy)
                        memcpy(copy, g->procs, g->n * sizeof(*copy));
                else
                        r = -ENOMEM;
        }
        if (r == 0) {
                *ret = copy;
                *n = g->n;
                if (ts_us)
                        *ts_us = g->ts_us;
        }
        pthread_mutex_unlock(&w->lock);
        return r;
}

int workload_gpu_owner(workload *w, unsigned gpu, workload_owner *out)
{
        const workload_owner *one = NULL;
        int r = -ENOENT;

        if (!w || !out || gpu >= w->n_gpus)
                return -ENOENT;
        pthread_mutex_lock(&w->lock);
        for (size_t i = 0; w->gpus[gpu].status == 0 && i < w->gpus[gpu].n; i++) {
                const workload_owner *o = &w->gpus[gpu].procs[i].owner;
                if (o->kind != WL_OWNER_POD && o->kind != WL_OWNER_SLURM)
                        continue;
                if (!one) {
                        one = o;
                        r = 0;
                } else if (one->kind != o->kind || strcmp(one->id, o->id) != 0) {
                        r = -EMLINK;
                        break;
                }
        }
        if (r == 0)
                *out = *one;
        pthread_mutex_unlock(&w->lock);
        return r;
}

void workload_get_stats(workload *w, workload_stats *out)
{
        memset(out, 0, sizeof(*out));
        if (!w)
                return;
        pthread_mutex_lock(&w->lock);
        *out = w->stats;
        pthread_mutex_unlock(&w->lock);
}

int64_t workload_interval(const workload *w)
{
        return w ? w->opt.interval_us : 0;
}
