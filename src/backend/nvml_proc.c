/* nvml_proc.c — the processes of a GPU, read-only: the compute and graphics lists, per-process
 * utilisation samples, and accounting stats when the administrator has switched accounting mode
 * on (never switched on here). Called by src/workload on the slow tier, never on the fast tier's
 * hot path: a full read costs two list calls, one utilisation call and, with accounting on, one
 * call per process. */
#include "nvml-internal.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/macros.h"

#define PROC_STACK  128 /* entries read without allocating */
#define PROC_TRIES  3   /* list calls when processes start between the count and the read */
#define PROC_MARGIN 16  /* room added for processes that start in between */

typedef nvmlReturn_t (*proc_list_fn)(nvmlDevice_t, unsigned int *, nvmlProcessInfo_t *);

/* One list (compute or graphics) into *ret (the stack buffer or a malloc'd one in *heap).
 * NVML_SUCCESS, or the NVML code of the failure. */
static int read_list(proc_list_fn fn, nvmlDevice_t h, nvmlProcessInfo_t *stack,
                     nvmlProcessInfo_t **heap, nvmlProcessInfo_t **ret, unsigned *n)
{
        unsigned cap = PROC_STACK;
        nvmlProcessInfo_t *buf = stack;

        if (!fn)
                return NVML_ERROR_FUNCTION_NOT_FOUND;
        for (int t = 0; t < PROC_TRIES; t++) {
                unsigned cnt = cap;
                int rc = (int)fn(h, &cnt, buf);

                if (rc == NVML_SUCCESS) {
                        *ret = buf;
                        *n = MIN(cnt, cap);
                        return NVML_SUCCESS;
                }
                if (rc != NVML_ERROR_INSUFFICIENT_SIZE)
                        return rc;
                /* NVML answered with the count and no entries: grow and ask again */
                cap = cnt + PROC_MARGIN;
                free(*heap);
                *heap = calloc(cap, sizeof(**heap));
                if (!*heap)
                        return NVML_ERROR_MEMORY;
                buf = *heap;
        }
        return NVML_ERROR_INSUFFICIENT_SIZE;
}

static backend_process *find_pid(backend_process *out, size_t n, unsigned pid)
{
        for (size_t i = 0; i < n; i++)
                if (out[i].pid == pid)
                        return &out[i];
        return NULL;
}

/* Add the entries of one list; prev/nprev is the list merged before (a process in both lists
 * that did not fit was already counted as dropped). */
static void merge(const nvmlProcessInfo_t *in, unsigned n, unsigned type,
                  const nvmlProcessInfo_t *prev, unsigned nprev, backend_process *out, size_t max,
                  backend_proc_list *list)
{
        for (unsigned i = 0; i < n; i++) {
                backend_process *p = find_pid(out, list->n, in[i].pid);
                bool seen_before = false;

                for (unsigned k = 0; !p && k < nprev; k++)
                        seen_before |= prev[k].pid == in[i].pid;

                if (p) { /* in both lists: one process, the larger memory figure */
                        p->type |= type;
                        if (in[i].usedGpuMemory != NVML_VALUE_NOT_AVAILABLE_ULL &&
                            (p->mem_bytes == UINT64_MAX || in[i].usedGpuMemory > p->mem_bytes))
                                p->mem_bytes = in[i].usedGpuMemory;
                        continue;
                }
                if (list->n >= max) {
                        if (!seen_before)
                                list->dropped++;
                        continue;
                }
                p = &out[list->n++];
                memset(p, 0, sizeof(*p));
                p->pid = in[i].pid;
                p->type = type;
                p->mem_bytes = in[i].usedGpuMemory == NVML_VALUE_NOT_AVAILABLE_ULL
                                   ? UINT64_MAX
                                   : in[i].usedGpuMemory;
                p->gpu_instance = in[i].gpuInstanceId;
                p->compute_instance = in[i].computeInstanceId;
                p->util_status = -ENODATA;
                p->acct_status = -EOPNOTSUPP;
        }
}

/* Per-process utilisation samples newer than *last_seen: averaged per PID into out[]. */
static int read_util(backend *b, nvmlDevice_t h, uint64_t *last_seen, backend_process *out,
                     size_t n)
{
        nvmlProcessUtilizationSample_t stack[PROC_STACK], *buf = stack;
        _cleanup_free_ nvmlProcessUtilizationSample_t *heap = NULL;
        unsigned cnt = 0;
        uint64_t newest = *last_seen;
        int rc;

        rc = CALL(b, process_utilization, h, NULL, &cnt, *last_seen);
        if (rc == NVML_ERROR_NOT_FOUND)
                return -ENODATA; /* no sample since last_seen */
        if (rc != NVML_SUCCESS && rc != NVML_ERROR_INSUFFICIENT_SIZE)
                return backend_errno_from_nvml(rc);
        if (cnt > PROC_STACK) {
                cnt += PROC_MARGIN; /* samples that arrive between the two calls */
                heap = calloc(cnt, sizeof(*heap));
                if (!heap)
                        return -ENOMEM;
                buf = heap;
        } else {
                cnt = PROC_STACK;
        }
        rc = CALL(b, process_utilization, h, buf, &cnt, *last_seen);
        if (rc == NVML_ERROR_NOT_FOUND)
                return -ENODATA;
        if (rc != NVML_SUCCESS)
                return backend_errno_from_nvml(rc);
        if (n) {
                /* per out[] entry: samples seen, and the sums of sm, mem, enc, dec */
                _cleanup_free_ uint64_t *acc = calloc(n * 5, sizeof(*acc));

                if (!acc)
                        return -ENOMEM;
                for (unsigned i = 0; i < cnt; i++) {
                        backend_process *p = find_pid(out, n, buf[i].pid);
                        uint64_t *a;

                        if (buf[i].timeStamp > newest)
                                newest = buf[i].timeStamp;
                        if (!p)
                                continue; /* a process that ended since the list was read */
                        a = &acc[(size_t)(p - out) * 5];
                        a[0]++;
                        a[1] += buf[i].smUtil;
                        a[2] += buf[i].memUtil;
                        a[3] += buf[i].encUtil;
                        a[4] += buf[i].decUtil;
                }
                for (size_t k = 0; k < n; k++) {
                        const uint64_t *a = &acc[k * 5];
                        if (!a[0])
                                continue;
                        out[k].util_status = 0;
                        out[k].sm_pct = (unsigned)(a[1] / a[0]);
                        out[k].mem_pct = (unsigned)(a[2] / a[0]);
                        out[k].enc_pct = (unsigned)(a[3] / a[0]);
                        out[k].dec_pct = (unsigned)(a[4] / a[0]);
                }
        } else {
                for (unsigned i = 0; i < cnt; i++)
                        if (buf[i].timeStamp > newest)
                                newest = buf[i].timeStamp;
        }
        *last_seen = newest;
        return 0;
}

static void read_accounting(backend *b, nvmlDevice_t h, backend_process *p)
{
        nvmlAccountingStats_t st;
        int rc;

        memset(&st, 0, sizeof(st));
        rc = CALL(b, accounting_stats, h, p->pid, &st);
        if (rc != NVML_SUCCESS) {
                p->acct_status = rc == NVML_ERROR_NOT_FOUND ? -ENOENT : backend_errno_from_nvml(rc);
                return;
        }
        p->acct_status = 0;
        p->acct_gpu_pct = st.gpuUtilization;
        p->acct_mem_pct = st.memoryUtilization;
        p->acct_max_mem = st.maxMemoryUsage;
        p->acct_time_ms = st.time;
        p->acct_start_us = (int64_t)st.startTime;
}

int backend_processes(backend *b, unsigned idx, uint64_t *last_seen_us, backend_process *out,
                      size_t max, backend_proc_list *list)
{
        nvmlProcessInfo_t stack[PROC_STACK], stack2[PROC_STACK], *got = NULL, *got2 = NULL;
        _cleanup_free_ nvmlProcessInfo_t *heap = NULL, *heap2 = NULL;
        backend_proc_list l = {.accounting = -1};
        nvmlEnableState_t mode = NVML_FEATURE_DISABLED;
        unsigned n = 0, n2 = 0;
        int lost, rc, lists = 0;
        nvmlDevice_t h;

        if (idx >= b->count || !list || !last_seen_us || (max && !out))
                return -EINVAL;
        h = nvml_slot_handle(b, idx, &lost);
        if (lost || !h)
                return -ENODEV;

        rc = read_list(b->api.compute_processes, h, stack, &heap, &got, &n);
        if (rc == NVML_ERROR_GPU_IS_LOST)
                return -ENODEV;
        if (rc == NVML_SUCCESS) {
                merge(got, n, BPROC_COMPUTE, NULL, 0, out, max, &l);
                lists++;
        } else if (rc != NVML_ERROR_NOT_SUPPORTED && rc != NVML_ERROR_FUNCTION_NOT_FOUND) {
                return backend_errno_from_nvml(rc);
        } else {
                n = 0;
        }
        rc = read_list(b->api.graphics_processes, h, stack2, &heap2, &got2, &n2);
        if (rc == NVML_ERROR_GPU_IS_LOST)
                return -ENODEV;
        if (rc == NVML_SUCCESS) {
                merge(got2, n2, BPROC_GRAPHICS, got, n, out, max, &l);
                lists++;
        } else if (rc != NVML_ERROR_NOT_SUPPORTED && rc != NVML_ERROR_FUNCTION_NOT_FOUND) {
                return backend_errno_from_nvml(rc);
        }
        if (!lists)
                return -EOPNOTSUPP;

        l.util_status = read_util(b, h, last_seen_us, out, l.n);
        if (l.util_status == -ENODEV)
                return -ENODEV;

        rc = CALL(b, accounting_mode, h, &mode);
        if (rc == NVML_SUCCESS) {
                l.accounting = mode == NVML_FEATURE_ENABLED;
                for (size_t i = 0; l.accounting && i < l.n; i++)
                        read_accounting(b, h, &out[i]);
        }
        *list = l;
        return 0;
}
