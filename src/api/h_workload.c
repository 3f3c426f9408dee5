/* h_workload.c — GET /api/v1/gpus/{id}/processes and GET /api/v1/processes: the processes on each
 * GPU with their owners, from the workload module's copy of its last read (no NVML call and no
 * /proc read on an HTTP thread). A read older than 3 x its interval (2 s at least) is answered
 * with "status": "stale" and no processes: an old list is never shown as current. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api-internal.h"
#include "reply.h"
#include "backend/backend.h"
#include "common/vtime.h"
#include "sampler/sampler.h"
#include "workload/workload.h"

/* usec after which a read is stale: 3 x the read interval (the slow tier's when reads follow
 * it), at least 2 s. */
int64_t api_workload_stale_after(api *a)
{
        int64_t iv = workload_interval(a->opt.workload);

        if (iv <= 0) {
                sampler_stats st;
                sampler_get_stats(a->opt.sampler, &st);
                iv = st.tier[TIER_SLOW].interval_us;
        }
        iv *= 3;
        return iv < 2 * USEC_PER_SEC ? 2 * USEC_PER_SEC : iv;
}

static const char *status_name(int st)
{
        switch (st) {
        case 0:
                return "ok";
        case -ENODATA:
                return "not_read_yet";
        case -ENODEV:
                return "lost";
        case -EOPNOTSUPP:
                return "not_supported";
        default:
                return "error";
        }
}

static const char *owner_status_name(int st)
{
        switch (st) {
        case 0:
                return "ok";
        case -ENOENT:
                return "gone"; /* exited between NVML's list and the /proc read */
        case -EACCES:
                return "permission_denied";
        case -EBADMSG:
                return "unreadable";
        default:
                return "error";
        }
}

static void set_str_or_null(json_t *o, const char *key, const char *v)
{
        json_object_set_new(o, key, v && v[0] ? json_string(v) : json_null());
}

static json_t *owner_json(const workload_owner *ow)
{
        json_t *o = json_object();

        json_object_set_new(o, "kind", json_string(workload_owner_kind_name(ow->kind)));
        set_str_or_null(o, "id", ow->id);
        if (ow->kind == WL_OWNER_POD) {
                set_str_or_null(o, "pod_uid", ow->id);
                set_str_or_null(o, "container_id", ow->container_id);
                set_str_or_null(o, "runtime", ow->runtime);
                set_str_or_null(o, "qos", ow->qos);
                set_str_or_null(o, "namespace", ow->ns);
                set_str_or_null(o, "pod", ow->pod);
                set_str_or_null(o, "container", ow->container);
        } else if (ow->kind == WL_OWNER_SLURM) {
                set_str_or_null(o, "job_id", ow->id);
                set_str_or_null(o, "step", ow->step);
        } else if (ow->kind == WL_OWNER_DOCKER) {
                set_str_or_null(o, "container_id", ow->id);
        }
        return o;
}

static double ratio(unsigned pct)
{
        return (double)pct / 100.0;
}

static json_t *process_json(const workload_process *wp, const backend_mig_info *mig)
{
        const backend_process *p = &wp->p;
        json_t *o = json_object(), *u;

        json_object_set_new(o, "gpu", json_integer(wp->gpu));
        json_object_set_new(o, "pid", json_integer(p->pid));
        json_object_set_new(o, "type",
                            json_string(p->type == (BPROC_COMPUTE | BPROC_GRAPHICS)
                                            ? "compute+graphics"
                                        : p->type & BPROC_GRAPHICS ? "graphics"
                                                                   : "compute"));
        set_str_or_null(o, "name", wp->comm);
        json_object_set_new(o, "memory_used_bytes",
                            p->mem_bytes == UINT64_MAX ? json_null()
                                                       : json_integer((json_int_t)p->mem_bytes));
        if (p->gpu_instance != UINT32_MAX) {
                json_object_set_new(o, "gpu_instance_id", json_integer(p->gpu_instance));
                if (p->compute_instance != UINT32_MAX)
                        json_object_set_new(o, "compute_instance_id",
                                            json_integer(p->compute_instance));
                for (unsigned k = 0; mig && k < mig->n && k < BACKEND_MIG_MAX; k++)
                        if (mig->inst[k].gpu_instance == p->gpu_instance) {
                                set_str_or_null(o, "mig_uuid", mig->inst[k].uuid);
                                set_str_or_null(o, "mig_profile", mig->inst[k].profile);
                                break;
                        }
        }
        if (p->util_status == 0) {
                u = json_object();
                json_object_set_new(u, "sm", json_real(ratio(p->sm_pct)));
                json_object_set_new(u, "memory", json_real(ratio(p->mem_pct)));
                json_object_set_new(u, "encoder", json_real(ratio(p->enc_pct)));
                json_object_set_new(u, "decoder", json_real(ratio(p->dec_pct)));
                json_object_set_new(o, "utilization", u);
        } else {
                json_object_set_new(o, "utilization", json_null());
        }
        if (p->acct_status == 0) {
                u = json_object();
                json_object_set_new(u, "gpu_utilization", json_real(ratio(p->acct_gpu_pct)));
                json_object_set_new(u, "memory_utilization", json_real(ratio(p->acct_mem_pct)));
                json_object_set_new(u, "max_memory_bytes",
                                    json_integer((json_int_t)p->acct_max_mem));
                json_object_set_new(u, "start", json_real((double)p->acct_start_us / 1e6));
                json_object_set_new(u, "time_ms", json_integer((json_int_t)p->acct_time_ms));
                json_object_set_new(o, "accounting", u);
        } else {
                json_object_set_new(o, "accounting", json_null());
        }
        json_object_set_new(o, "owner_status", json_string(owner_status_name(wp->owner_status)));
        json_object_set_new(o, "owner", owner_json(&wp->owner));
        set_str_or_null(o, "cgroup", wp->cgroup);
        return o;
}

/* One GPU's answer: {gpu, uuid, status, read_at, processes: [...]}. */
static json_t *gpu_json(api *a, unsigned idx)
{
        workload_process *procs = NULL;
        backend_mig_info mig;
        sampler_gpu g;
        size_t n = 0;
        int64_t ts = 0, now = time_real_us();
        json_t *o = json_object(), *arr = json_array();
        int st = workload_gpu_processes(a->opt.workload, idx, &procs, &n, &ts);

        if (st == 0 && now - ts > api_workload_stale_after(a)) {
                free(procs);
                procs = NULL;
                n = 0;
                st = -ESTALE;
        }
        if (backend_mig_get(a->opt.backend, idx, &mig) < 0 || mig.status != 0 || !mig.mode)
                mig.n = 0;
        json_object_set_new(o, "gpu", json_integer(idx));
        if (sampler_gpu_get(a->opt.sampler, idx, &g) == 0)
                json_object_set_new(o, "uuid", json_string(g.id.uuid));
        json_object_set_new(o, "status", json_string(st == -ESTALE ? "stale" : status_name(st)));
        if (ts)
                json_object_set_new(o, "read_at", json_real((double)ts / 1e6));
        for (size_t i = 0; i < n; i++)
                json_array_append_new(arr, process_json(&procs[i], &mig));
        json_object_set_new(o, "processes", arr);
        free(procs);
        return o;
}

enum MHD_Result h_gpu_processes(request *r)
{
        api *a = r->api;
        unsigned idx;

        if (!a->opt.workload)
                return api_reply_errno(r, -EAGAIN,
                                       "processes are not read (workload.enabled is off)");
        if (sampler_gpu_find(a->opt.sampler, r->seg[0], &idx) < 0)
                return api_reply_errno(r, -ENODEV, "no GPU '%s'", r->seg[0]);
        return api_reply_json(r, 200, gpu_json(a, idx));
}

enum MHD_Result h_processes(request *r)
{
        api *a = r->api;
        unsigned n = sampler_gpu_count(a->opt.sampler);
        json_t *o, *arr;

        if (!a->opt.workload)
                return api_reply_errno(r, -EAGAIN,
                                       "processes are not read (workload.enabled is off)");
        o = json_object();
        arr = json_array();
        for (unsigned i = 0; i < n; i++)
                json_array_append_new(arr, gpu_json(a, i));
        json_object_set_new(o, "gpus", arr);
        {
                workload_kubelet k;
                json_t *ko = json_object();
                workload_kubelet_get(a->opt.workload, &k);
                json_object_set_new(ko, "enabled", json_boolean(k.enabled));
                if (k.enabled) {
                        json_object_set_new(ko, "up", json_boolean(k.status == 0));
                        set_str_or_null(ko, "error",
                                        k.status == -ENODATA ? "not asked yet" : k.error);
                        json_object_set_new(ko, "last_answer",
                                            k.last_ok_us ? json_real((double)k.last_ok_us / 1e6)
                                                         : json_null());
                        json_object_set_new(ko, "gpu_allocations",
                                            json_integer((json_int_t)k.allocations));
                        json_object_set_new(ko, "container_names",
                                            json_integer((json_int_t)k.names));
                }
                json_object_set_new(o, "kubelet", ko);
        }
        return api_reply_json(r, 200, o);
}
