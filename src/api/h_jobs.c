/* h_jobs.c — job statistics over the API: POST /api/v1/jobs registers a job (permission write),
 * POST /api/v1/jobs/{id}/stop ends one (write), GET /api/v1/jobs lists them (filters state, kind,
 * gpu, since, limit), GET /api/v1/jobs/{id} shows one per GPU. Starts and stops are audited as
 * "job_start" / "job_stop" with the job id. The jobs are the workload module's (workload/jobs.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api-internal.h"
#include "common/errmap.h"
#include "common/vtime.h"
#include "reply.h"
#include "security/auth.h"
#include "workload/jobs.h"

static jobs *service(request *r)
{
        return r->api->opt.jobs;
}

static const char *query(request *r, const char *key)
{
        return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, key);
}

/* One audit record for a start or stop, with its outcome; the gate's generic record is then
 * skipped (gate_req.audited). */
static void audit(request *r, const char *event, const char *id, unsigned status, const char *why)
{
        char detail[512];

        if (!r->api->opt.gate)
                return;
        snprintf(detail, sizeof(detail), "job=%.200s%s%.256s", id ? id : "",
                 why && *why ? "; " : "", why ? why : "");
        for (char *c = detail; *c; c++) /* the id is the client's: no control characters */
                if ((unsigned char)*c < 0x20 || *c == 0x7f)
                        *c = '?';
        gate_audit(r->api->opt.gate, r->sec.principal, auth_role_name(r->sec.role),
                   r->sec.source_ip, r->method, r->path, (int)status, event, detail,
                   r->sec.request_id);
        r->sec.audited = true;
}

/* "gpus": [0, 1] → mask; absent = 0 (every GPU). 0 or -EINVAL with a reason. */
static int parse_gpus(const json_t *a, uint64_t *mask, char *err, size_t errlen)
{
        const json_t *v;
        size_t i;

        *mask = 0;
        if (!a)
                return 0;
        if (!json_is_array(a) || json_array_size(a) == 0) {
                snprintf(err, errlen, "'gpus' must be a non-empty array of GPU indices");
                return -EINVAL;
        }
        json_array_foreach(a, i, v)
        {
                json_int_t g = json_integer_value(v);
                if (!json_is_integer(v) || g < 0 || g >= JOBS_MAX_GPUS) {
                        snprintf(err, errlen, "'gpus' entry %zu is not a GPU index (0-%d)", i,
                                 JOBS_MAX_GPUS - 1);
                        return -EINVAL;
                }
                *mask |= UINT64_C(1) << g;
        }
        return 0;
}

enum MHD_Result h_job_start(request *r)
{
        jobs *s = service(r);
        json_t *body, *o;
        json_error_t jerr;
        const char *id = NULL, *key;
        char err[512] = "";
        uint64_t mask = 0;
        int rc;

        if (!s)
                return api_reply_errno(r, -EAGAIN, "job statistics are not available");
        body = json_loadb(r->body.data ? r->body.data : "", r->body.len, JSON_REJECT_DUPLICATES,
                          &jerr);
        if (!body || !json_is_object(body)) {
                json_decref(body);
                audit(r, "job_start", "", 400, "invalid JSON body");
                return api_reply_errno(r, -EBADMSG, "invalid JSON body: %s",
                                       body ? "not an object" : jerr.text);
        }
        json_object_foreach(body, key, o)
        {
                if (strcmp(key, "id") && strcmp(key, "gpus")) {
                        snprintf(err, sizeof(err), "unknown key '%.64s' (expected id, gpus)", key);
                        rc = -EINVAL;
                        goto refuse;
                }
        }
        id = json_string_value(json_object_get(body, "id"));
        if (!id) {
                snprintf(err, sizeof(err), "missing string 'id'");
                rc = -EINVAL;
                goto refuse;
        }
        rc = parse_gpus(json_object_get(body, "gpus"), &mask, err, sizeof(err));
        if (rc == 0)
                rc = jobs_start(s, id, mask, err, sizeof(err));
        if (rc == 0) {
                json_t *job = NULL;
                audit(r, "job_start", id, 201, NULL);
                rc = jobs_get(s, id, &job);
                json_decref(body);
                if (rc < 0)
                        return api_reply_errno(r, rc, "job started, but cannot be read back");
                return api_reply_json(r, 201, job);
        }
refuse:
        audit(r, "job_start", id ? id : "", (unsigned)errmap_http_status(rc), err);
        json_decref(body);
        return api_reply_errno(r, rc, "cannot start job: %s", err);
}

enum MHD_Result h_job_stop(request *r)
{
        jobs *s = service(r);
        char err[512] = "";
        json_t *job = NULL;
        int rc;

        if (!s)
                return api_reply_errno(r, -EAGAIN, "job statistics are not available");
        rc = jobs_stop(s, r->seg[0], err, sizeof(err));
        audit(r, "job_stop", r->seg[0], rc == 0 ? 200 : (unsigned)errmap_http_status(rc), err);
        if (rc < 0)
                return api_reply_errno(r, rc, "cannot stop job: %s", err);
        rc = jobs_get(s, r->seg[0], &job);
        if (rc < 0)
                return api_reply_errno(r, rc, "job stopped, but cannot be read back");
        return api_reply_json(r, 200, job);
}

enum MHD_Result h_job_get(request *r)
{
        jobs *s = service(r);
        json_t *job = NULL;

        if (!s)
                return api_reply_errno(r, -EAGAIN, "job statistics are not available");
        if (jobs_get(s, r->seg[0], &job) < 0)
                return api_reply_errno(r, -ENOENT, "no job '%.200s'", r->seg[0]);
        return api_reply_json(r, 200, job);
}

static int parse_num(const char *s, long long min, long long max, long long *ret)
{
        char *end;
        long long v;

        errno = 0;
        v = strtoll(s, &end, 10);
        if (!*s || *end || errno || v < min || v > max)
                return -EINVAL;
        *ret = v;
        return 0;
}

enum MHD_Result h_jobs_list(request *r)
{
        jobs *s = service(r);
        jobs_filter f = {.gpu = -1};
        const char *v;
        long long n;
        json_t *out = NULL;
        int rc;

        if (!s)
                return api_reply_errno(r, -EAGAIN, "job statistics are not available");
        f.state = query(r, "state");
        if (f.state && strcmp(f.state, "running") && strcmp(f.state, "finished"))
                return api_reply_errno(r, -EINVAL, "bad 'state' '%.64s': running or finished",
                                       f.state);
        f.kind = query(r, "kind");
        if (f.kind && strcmp(f.kind, "registered") && strcmp(f.kind, "slurm") &&
            strcmp(f.kind, "pod"))
                return api_reply_errno(r, -EINVAL, "bad 'kind' '%.64s': registered, slurm or pod",
                                       f.kind);
        if ((v = query(r, "gpu"))) {
                if (parse_num(v, 0, JOBS_MAX_GPUS - 1, &n) < 0)
                        return api_reply_errno(r, -EINVAL, "bad 'gpu' '%.64s': a GPU index", v);
                f.gpu = (int)n;
        }
        if ((v = query(r, "since"))) {
                if (parse_num(v, 1, 3650LL * 86400, &n) < 0)
                        return api_reply_errno(r, -EINVAL,
                                               "bad 'since' '%.64s': seconds, 1-315360000", v);
                f.since_us = time_real_us() - n * 1000000LL;
        }
        if ((v = query(r, "limit"))) {
                if (parse_num(v, 1, JOBS_LIST_MAX, &n) < 0)
                        return api_reply_errno(r, -EINVAL, "bad 'limit' '%.64s': 1-%d", v,
                                               JOBS_LIST_MAX);
                f.limit = (unsigned)n;
        }
        rc = jobs_list(s, &f, &out);
        if (rc < 0)
                return api_reply_errno(r, rc, "cannot list jobs");
        return api_reply_json(r, 200, out);
}
