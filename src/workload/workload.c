/* workload.c — the reader thread ("vg-workload") and the per-GPU copy readers get. Each read
 * asks the backend for every answering GPU's processes, then reads each PID's cgroup under
 * workload.proc_root. Attribution is read again every time, not cached by PID: a PID reused by
 * another container is attributed to its new owner at the next read, and a process that exited
 * between NVML's list and the /proc read is kept with owner_status -ENOENT (NVML still listed it).
 * With kubernetes on, each read first asks the kubelet (kubelet.c) and reads the container log
 * links (names.c), then joins: names by container id, and the GPU's pod from the kubelet's
 * assignment. The copy is swapped in whole per GPU under the lock; readers copy it out. */
#include "workload.h"
#include "workload-internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
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
        workload_owner kube;   /* the pod the kubelet assigned the GPU to */
        int kube_status;       /* 0 one pod, -ENOENT none, -EMLINK several, -ENODATA unknown */
} wl_gpu;

struct workload {
        workload_options opt;     /* copy; proc_root owned below */
        char *proc_root;          /* owned */
        char *kubelet_socket;     /* owned */
        char *logs_dir;           /* owned */
        workload_kubelet kubelet; /* under lock */
        kube_alloc *allocs;       /* last kubelet answer; reader thread only */
        size_t n_allocs;
        kube_names *names; /* container log links of the current read; reader thread only */
        size_t n_names;
        unsigned n_gpus;      /* GPUs the sampler found */
        wl_gpu *gpus;         /* n_gpus, under lock */
        pthread_mutex_t lock; /* guards gpus[].status/ts_us/procs/n and stats */
        pthread_cond_t cond;  /* wakes the reader */
        bool wake;            /* a slow sweep asked for a read */
        bool stop;            /* the thread must end */
        bool running;         /* thread started */
        pthread_t thread;
        workload_stats stats;     /* under lock */
        kubeapi *kubeapi;         /* pod labels (opt.pod_labels); NULL when off */
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
        w->kubelet_socket = strdup(opt->kubelet_socket ? opt->kubelet_socket : "");
        w->logs_dir = strdup(opt->container_logs_dir ? opt->container_logs_dir : "");
        w->kubelet.enabled = opt->kubernetes;
        w->kubelet.status = -ENODATA;
        w->gpus = calloc(w->n_gpus ? w->n_gpus : 1, sizeof(*w->gpus));
        w->scratch = calloc(opt->max_processes, sizeof(*w->scratch));
        if (!w->proc_root || !w->gpus || !w->scratch || !w->kubelet_socket || !w->logs_dir) {
                free(w->kubelet_socket);
                free(w->logs_dir);
                free(w->proc_root);
                free(w->gpus);
                free(w->scratch);
                return -ENOMEM;
        }
        w->opt.proc_root = w->proc_root;
        if (opt->kubernetes && opt->pod_labels) {
                char err[256];
                int r = kubeapi_new(opt, &w->kubeapi, err, sizeof(err));
                if (r < 0) {
                        log_error("workload", "cannot set up pod labels: %s", err);
                        free(w->kubelet_socket);
                        free(w->logs_dir);
                        free(w->proc_root);
                        free(w->gpus);
                        free(w->scratch);
                        return r;
                }
        }
        /* the strings kubeapi_new() copied are not kept here */
        w->opt.pod_label_allowlist = w->opt.kube_api_url = w->opt.kube_token_file =
            w->opt.kube_ca_file = NULL;
        for (unsigned i = 0; i < w->n_gpus; i++) {
                w->gpus[i].status = -ENODATA;
                w->gpus[i].kube_status = -ENODATA;
        }
        pthread_mutex_init(&w->lock, NULL);
        pthread_cond_init(&w->cond, NULL);
        *ret = TAKE_PTR(w);
        return 0;
}

/* Does a device id the device plugin reported name this GPU? "GPU-<uuid>", a time-slicing
 * replica "GPU-<uuid>::N", "nvidia<minor>" (--kubernetes-gpu-id-type device-name), or the UUID of
 * one of its MIG instances. */
static bool device_is_gpu(const char *dev, const sampler_gpu *g, const backend_mig_info *mig)
{
        size_t len = strcspn(dev, ":");
        char name[32];

        if (g->id.uuid[0] && strlen(g->id.uuid) == len && !strncmp(dev, g->id.uuid, len))
                return true;
        snprintf(name, sizeof(name), "nvidia%d", g->id.minor >= 0 ? g->id.minor : (int)g->index);
        if (!strcmp(dev, name))
                return true;
        for (unsigned k = 0; mig && k < mig->n && k < BACKEND_MIG_MAX; k++)
                if (mig->inst[k].uuid[0] && !strncmp(dev, mig->inst[k].uuid, len) &&
                    strlen(mig->inst[k].uuid) == len)
                        return true;
        return false;
}

/* Names of a pod process: by its container id from the log links; else, when the kubelet
 * assigned this GPU to exactly one pod and the process's pod is the only pod on the GPU, that
 * pod's. */
static void join_names(workload *w, workload_process *procs, size_t n, const wl_gpu *gk)
{
        const char *uid = NULL;
        bool one_uid = true;

        for (size_t i = 0; i < n; i++) {
                workload_owner *o = &procs[i].owner;
                if (o->kind != WL_OWNER_POD)
                        continue;
                if (uid && strcmp(uid, o->id))
                        one_uid = false;
                uid = o->id;
                for (size_t k = 0; o->container_id[0] && k < w->n_names; k++)
                        if (!strcmp(w->names[k].id, o->container_id)) {
                                snprintf(o->ns, sizeof(o->ns), "%s", w->names[k].ns);
                                snprintf(o->pod, sizeof(o->pod), "%s", w->names[k].pod);
                                snprintf(o->container, sizeof(o->container), "%s",
                                         w->names[k].container);
                                break;
                        }
        }
        if (!one_uid || gk->kube_status != 0)
                return;
        for (size_t i = 0; i < n; i++) {
                workload_owner *o = &procs[i].owner;
                if (o->kind != WL_OWNER_POD || o->pod[0])
                        continue;
                snprintf(o->ns, sizeof(o->ns), "%s", gk->kube.ns);
                snprintf(o->pod, sizeof(o->pod), "%s", gk->kube.pod);
                snprintf(o->container, sizeof(o->container), "%s", gk->kube.container);
        }
}

/* The pod the kubelet assigned GPU gi to: 0 one pod (container name when one container of it
 * holds the GPU), -ENOENT none, -EMLINK several pods (time-slicing, MPS). */
static int kube_owner(workload *w, const sampler_gpu *g, const backend_mig_info *mig,
                      workload_owner *out)
{
        const kube_alloc *one = NULL;
        bool one_container = true;

        memset(out, 0, sizeof(*out));
        for (size_t k = 0; k < w->n_allocs; k++) {
                const kube_alloc *a = &w->allocs[k];
                if (!device_is_gpu(a->device, g, mig))
                        continue;
                if (!one) {
                        one = a;
                        continue;
                }
                if (strcmp(one->ns, a->ns) || strcmp(one->pod, a->pod))
                        return -EMLINK;
                if (strcmp(one->container, a->container))
                        one_container = false;
        }
        if (!one)
                return -ENOENT;
        out->kind = WL_OWNER_POD;
        snprintf(out->ns, sizeof(out->ns), "%s", one->ns);
        snprintf(out->pod, sizeof(out->pod), "%s", one->pod);
        if (one_container)
                snprintf(out->container, sizeof(out->container), "%s", one->container);
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

        workload_owner kube;
        int kube_st = -ENODATA;
        backend_mig_info mig;

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
        memset(&kube, 0, sizeof(kube));
        if (r == 0 && w->opt.kubernetes && w->kubelet.status == 0) {
                if (backend_mig_get(w->opt.backend, gi, &mig) < 0 || mig.status != 0 || !mig.mode)
                        mig.n = 0;
                kube_st = kube_owner(w, &sg, &mig, &kube);
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
                if (w->opt.kubernetes) {
                        wl_gpu tmp = {.kube = kube, .kube_status = kube_st};
                        join_names(w, procs, list.n, &tmp);
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
        g->kube = kube;
        g->kube_status = kube_st;
        pthread_mutex_unlock(&w->lock);
        /* procs stays g's until this thread's next read of the GPU: safe to lend here */
        if (r == 0 && w->opt.on_read)
                w->opt.on_read(w->opt.userdata, gi, procs, list.n, g->ts_us);
}

/* Ask the kubelet and read the container log links, once per read. A failure is logged when
 * the state changes (not every read) and shown in workload_kubelet_get(); the processes are read
 * and attributed either way, only without names. */
static void read_kubelet(workload *w)
{
        kube_alloc *allocs = NULL;
        kube_names *names = NULL;
        size_t na = 0, nn = 0;
        char err[256] = "";
        int r, was, nr;

        r = kubelet_list(w->kubelet_socket, w->opt.kubelet_timeout_us, &allocs, &na, err,
                         sizeof(err));
        nr = names_scan(w->logs_dir, &names, &nn);
        free(w->names);
        w->names = nr == 0 ? names : NULL;
        w->n_names = nr == 0 ? nn : 0;
        if (r == 0) {
                free(w->allocs);
                w->allocs = allocs;
                w->n_allocs = na;
        } else {
                free(w->allocs); /* never join on an old answer */
                w->allocs = NULL;
                w->n_allocs = 0;
        }
        pthread_mutex_lock(&w->lock);
        was = w->kubelet.status;
        w->kubelet.status = r;
        snprintf(w->kubelet.error, sizeof(w->kubelet.error), "%s", r < 0 ? err : "");
        if (r == 0)
                w->kubelet.last_ok_us = time_real_us();
        w->kubelet.allocations = w->n_allocs;
        w->kubelet.names = w->n_names;
        pthread_mutex_unlock(&w->lock);
        if (r < 0 && was != r)
                log_warn("workload",
                         "%s; processes are attributed without pod names from the "
                         "kubelet until it answers",
                         err);
        else if (r == 0 && was != 0)
                log_info("workload", "the kubelet at '%s' answers: %zu GPU devices assigned",
                         w->kubelet_socket, na);
        if (nr < 0 && nr != -ENOENT)
                log_debug("workload", "cannot read '%s': %s", w->logs_dir, strerror(-nr));
}

static bool add_pod(kube_pod_ref *refs, size_t *n, size_t max, const workload_owner *o)
{
        if (o->kind != WL_OWNER_POD || !o->pod[0] || !o->ns[0])
                return false;
        for (size_t i = 0; i < *n; i++)
                if (!strcmp(refs[i].ns, o->ns) && !strcmp(refs[i].pod, o->pod)) {
                        if (!refs[i].uid[0])
                                snprintf(refs[i].uid, sizeof(refs[i].uid), "%s", o->id);
                        return true;
                }
        if (*n >= max)
                return false;
        snprintf(refs[*n].ns, sizeof(refs[*n].ns), "%s", o->ns);
        snprintf(refs[*n].pod, sizeof(refs[*n].pod), "%s", o->pod);
        snprintf(refs[*n].uid, sizeof(refs[*n].uid), "%s", o->id);
        (*n)++;
        return true;
}

/* The pods this read found on the GPUs (the kubelet's assignment and the processes' owners)
 * to the label cache, which fetches what is due. Reader thread, after the read. */
static void refresh_pod_labels(workload *w)
{
        kube_pod_ref *refs;
        size_t n = 0, max = 0;

        pthread_mutex_lock(&w->lock);
        for (unsigned i = 0; i < w->n_gpus; i++)
                max += w->gpus[i].n + 1;
        max = MIN(max, (size_t)KUBEAPI_PODS_MAX);
        refs = calloc(max ? max : 1, sizeof(*refs));
        if (!refs) {
                pthread_mutex_unlock(&w->lock);
                return;
        }
        for (unsigned i = 0; i < w->n_gpus; i++) {
                const wl_gpu *g = &w->gpus[i];
                if (g->status != 0)
                        continue;
                for (size_t k = 0; k < g->n; k++)
                        add_pod(refs, &n, max, &g->procs[k].owner);
                if (g->kube_status == 0)
                        add_pod(refs, &n, max, &g->kube);
        }
        pthread_mutex_unlock(&w->lock);
        kubeapi_refresh(w->kubeapi, refs, n);
        free(refs);
}

static void read_all(workload *w)
{
        int64_t t0 = time_mono_us();
        uint64_t dropped = 0, errors = 0;

        if (w->opt.kubernetes)
                read_kubelet(w);

        for (unsigned i = 0; i < w->n_gpus; i++)
                read_gpu(w, i, &dropped, &errors);
        if (w->kubeapi)
                refresh_pod_labels(w);
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
        free(w->kubelet_socket);
        free(w->logs_dir);
        free(w->allocs);
        free(w->names);
        kubeapi_free(w->kubeapi);
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
        if (w->gpus[gpu].status == 0 && w->gpus[gpu].kube_status != -ENOENT &&
            w->gpus[gpu].kube_status != -ENODATA) {
                /* the kubelet's assignment, as dcgm-exporter maps it; the UID from the processes
                 * of that pod when they show it */
                r = w->gpus[gpu].kube_status;
                if (r == 0) {
                        *out = w->gpus[gpu].kube;
                        for (size_t i = 0; i < w->gpus[gpu].n; i++) {
                                const workload_owner *o = &w->gpus[gpu].procs[i].owner;
                                if (o->kind == WL_OWNER_POD && !strcmp(o->pod, out->pod) &&
                                    !strcmp(o->ns, out->ns)) {
                                        snprintf(out->id, sizeof(out->id), "%s", o->id);
                                        break;
                                }
                        }
                }
                pthread_mutex_unlock(&w->lock);
                return r;
        }
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

void workload_kubelet_get(workload *w, workload_kubelet *out)
{
        memset(out, 0, sizeof(*out));
        if (!w)
                return;
        pthread_mutex_lock(&w->lock);
        *out = w->kubelet;
        pthread_mutex_unlock(&w->lock);
}

size_t workload_pod_labels(workload *w, const workload_owner *o, workload_pod_label *out,
                           size_t max)
{
        if (!w || !w->kubeapi || !o || o->kind != WL_OWNER_POD || !o->pod[0])
                return 0;
        return kubeapi_lookup(w->kubeapi, o->ns, o->pod, o->id, out, max);
}

void workload_kubeapi_get(workload *w, workload_kubeapi *out)
{
        memset(out, 0, sizeof(*out));
        if (w && w->kubeapi)
                kubeapi_state(w->kubeapi, out);
}
