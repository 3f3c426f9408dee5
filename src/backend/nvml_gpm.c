/* nvml_gpm.c — the profiling fields (DCGM 1001-1033) through GPM (Hopper and newer): two samples per GPU,
 * allocated at attach; each read takes one nvmlGpmSampleGet into the spare sample and one
 * nvmlGpmMetricsGet between the previous sample and this one. */
#include "nvml-internal.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#include "common/log.h"
#include "common/macros.h"
#include "common/vtime.h"

/* ---- GPM ------------------------------------------------------------------------------ */

static int gpm_api(const backend *b)
{
        return b->api.gpm_query_support && b->api.gpm_sample_alloc && b->api.gpm_sample_free &&
               b->api.gpm_sample_get && b->api.gpm_metrics_get;
}

void nvml_gpm_release_locked(backend *b, gpu_slot *s)
{
        for (int k = 0; k < 2; k++) {
                if (s->gpm[k] && b->api.gpm_sample_free)
                        b->api.gpm_sample_free(s->gpm[k]);
                s->gpm[k] = NULL;
        }
        s->gpm_prev = -1;
        s->gpm_supported = -1;
}

void backend_gpm_restart(backend *b, unsigned idx)
{
        gpu_slot *s;

        if (idx >= b->count)
                return;
        s = &b->gpus[idx];
        pthread_mutex_lock(&s->gpm_lock);
        s->gpm_prev = -1;
        pthread_mutex_unlock(&s->gpm_lock);
}

/* At attach (not on the sampling path): allocate the two samples, ask whether the GPU supports
 * GPM and, when it does, take the first sample, so that the first sweep already reports the
 * activity since attach instead of "no data". A failed query is asked again by nvml_gpm_read(). */
void nvml_gpm_attach(backend *b, gpu_slot *s, nvmlDevice_t h)
{
        nvmlGpmSupport_t sup = {.version = NVML_GPM_SUPPORT_VERSION};
        int rc;

        pthread_mutex_lock(&s->gpm_lock);
        nvml_gpm_release_locked(b, s);
        if (!gpm_api(b)) {
                s->gpm_supported = 0;
                goto out;
        }
        rc = b->api.gpm_query_support(h, &sup);
        if (rc == NVML_SUCCESS)
                s->gpm_supported = sup.isSupportedDevice != 0;
        else if (backend_errno_from_nvml(rc) == -EOPNOTSUPP)
                s->gpm_supported = 0;
        if (s->gpm_supported == 0)
                goto out;
        if (b->api.gpm_sample_alloc(&s->gpm[0]) != NVML_SUCCESS ||
            b->api.gpm_sample_alloc(&s->gpm[1]) != NVML_SUCCESS) {
                int known = s->gpm_supported;
                nvml_gpm_release_locked(b, s); /* nvml_gpm_read() answers -ENOMEM until re-attach */
                s->gpm_supported = known;
                goto out;
        }
        if (s->gpm_supported == 1 && b->api.gpm_sample_get(h, s->gpm[0]) == NVML_SUCCESS)
                s->gpm_prev = 0;
out:
        pthread_mutex_unlock(&s->gpm_lock);
}

/* Read the GPM fields out[which[0..nw)] (fields[] gives their ids): one nvmlGpmSampleGet into
 * the spare sample, then one nvmlGpmMetricsGet for all of them between the previous sample and
 * this one; this one becomes the previous. Without a previous sample the fields answer -ENODATA
 * (never a made-up value). Learns -EOPNOTSUPP per field like the other paths. Returns 0, or
 * -ENODEV when the GPU is lost. No allocation (the request lives on the stack, ~13 KiB). */
int nvml_gpm_read(backend *b, gpu_slot *s, nvmlDevice_t h, const uint16_t *fields,
                  const size_t *which, size_t nw, field_value *out)
{
        nvmlGpmMetricsGet_t mg;
        int err = 0, rc, cur;
        int64_t t0;

        pthread_mutex_lock(&s->gpm_lock);
        if (s->gpm_supported < 0 && gpm_api(b)) {
                nvmlGpmSupport_t sup = {.version = NVML_GPM_SUPPORT_VERSION};
                t0 = call_clock_ns();
                rc = b->api.gpm_query_support(h, &sup);
                call_account(G_GPM_QUERY, t0);
                if (rc == NVML_SUCCESS)
                        s->gpm_supported = sup.isSupportedDevice != 0;
                else if ((err = backend_errno_from_nvml(rc)) == -EOPNOTSUPP)
                        s->gpm_supported = 0;
        }
        if (!gpm_api(b) || s->gpm_supported == 0)
                err = -EOPNOTSUPP;
        else if (!err && (!s->gpm[0] || !s->gpm[1]))
                err = -ENOMEM;
        if (err)
                goto done;

        cur = s->gpm_prev == 0 ? 1 : 0;
        t0 = call_clock_ns();
        rc = b->api.gpm_sample_get(h, s->gpm[cur]);
        call_account(G_GPM_SAMPLE, t0);
        if (rc != NVML_SUCCESS) {
                err = backend_errno_from_nvml(rc);
                if (err == -EOPNOTSUPP)
                        s->gpm_supported = 0;
                goto done; /* the previous sample stays the start of the next interval */
        }
        if (s->gpm_prev < 0) {
                s->gpm_prev = cur;
                err = -ENODATA;
                goto done;
        }

        memset(&mg, 0, sizeof(mg));
        mg.version = NVML_GPM_METRICS_GET_VERSION;
        mg.numMetrics = (unsigned)nw;
        mg.sample1 = s->gpm[s->gpm_prev];
        mg.sample2 = s->gpm[cur];
        for (size_t k = 0; k < nw; k++)
                mg.metrics[k].metricId = nvml_read_for(fields[which[k]])->slot;
        t0 = call_clock_ns();
        rc = b->api.gpm_metrics_get(&mg);
        call_account(G_GPM_METRICS, t0);
        s->gpm_prev = cur; /* the next interval starts here, whatever this one gave */
        if (rc != NVML_SUCCESS) {
                err = backend_errno_from_nvml(rc);
                goto done;
        }
        pthread_mutex_unlock(&s->gpm_lock);

        for (size_t k = 0; k < nw; k++) {
                const nvmlGpmMetric_t *m = &mg.metrics[k];
                int fi = field_index(fields[which[k]]);
                field_value *o = &out[which[k]];
                double ratio;

                if (m->nvmlReturn == NVML_SUCCESS) {
                        /* An H200 (driver 580) answers SUCCESS with NaN for DRAM_BW_UTIL over
                         * intervals of a few ms to ~50 ms: no data for that interval, not a
                         * failure (the first sweep after attach can be that close). */
                        if (!isfinite(m->value)) {
                                o->status = -ENODATA;
                                continue;
                        }
                        o->status = 0;
                        if (nvml_read_for(fields[which[k]])->conv == C_MIBPS) {
                                /* MiB/s → B/s; a rate is never negative. */
                                o->d = m->value < 0 ? 0 : m->value * 1048576.0;
                        } else {
                                /* Counters read at two instants can overshoot 100 % by a
                                 * rounding hair; the DCGM field is a ratio of time, 0..1. */
                                ratio = m->value / 100.0;
                                o->d = ratio < 0 ? 0 : ratio > 1 ? 1 : ratio;
                        }
                        method_set(s, fi, M_PRIMARY);
                        continue;
                }
                err = backend_errno_from_nvml(m->nvmlReturn);
                if (err == -ENODEV)
                        return -ENODEV;
                if (err == -EOPNOTSUPP)
                        method_set(s, fi, M_UNSUPPORTED); /* o->status is -EOPNOTSUPP already */
                else
                        o->status = err;
        }
        return 0;

done:
        pthread_mutex_unlock(&s->gpm_lock);
        if (err == -ENODEV)
                return -ENODEV;
        for (size_t k = 0; k < nw; k++) {
                if (err == -EOPNOTSUPP)
                        method_set(s, field_index(fields[which[k]]), M_UNSUPPORTED);
                else
                        out[which[k]].status = err;
        }
        return 0;
}
