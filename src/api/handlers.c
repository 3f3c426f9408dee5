/* handlers.c — the JSON endpoints. Each reads copies from the engine and the cache; none of
 * them touches NVML. Shapes are documented in docs/api.md. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api-internal.h"
#include "reply.h"
#include "selfmetrics.h"
#include "common/log.h"
#include "common/macros.h"
#include "common/vtime.h"

#define MAX_QUERY_FIELDS   64
#define MAX_HISTORY_POINTS 10000

static const char *status_name(int st)
{
        switch (st) {
        case 0:
                return "ok";
        case -EOPNOTSUPP:
                return "not_supported";
        case -ENODEV:
                return "gpu_lost";
        case -EACCES:
                return "no_permission";
        case -ENODATA:
                return "no_data";
        default:
                return "error";
        }
}

static json_t *value_json(const field_meta *m, const field_value *v)
{
        if (m->type == FT_F64)
                return isfinite(v->d) ? json_real(v->d) : NULL;
        return json_integer(v->i);
}

/* FIELDVALUE object, or NULL when the field is not watched on that GPU. Staleness is the
 * sampler's (sampler_latest): a stale reading is "status": "stale" with its "last_value" and
 * "age_seconds", never a "value"; a lost GPU's readings are "gpu_lost". */
static json_t *field_json(api *a, unsigned gpu, const field_meta *m, bool gpu_is_up)
{
        sampler_reading rd;
        field_value v;
        json_t *o, *val;
        bool stale;

        if (sampler_latest(a->opt.sampler, gpu, m->id, 0, &rd) < 0)
                return NULL;
        v = rd.v;
        if (!gpu_is_up && m->tier != TIER_STATIC)
                v.status = -ENODEV; /* never present a lost GPU's last reading as current */
        o = json_pack("{s:i,s:s,s:s}", "id", m->id, "name", m->sym, "unit", m->unit);
        val = v.status == 0 ? value_json(m, &v) : NULL;
        if (v.status == 0 && !val)
                v.status = -EIO;
        stale = v.status == 0 && rd.fresh != SAMPLER_FRESH;
        json_object_set_new(o, "status", json_string(stale ? "stale" : status_name(v.status)));
        if (val)
                json_object_set_new(o, stale ? "last_value" : "value", val);
        if (stale)
                json_object_set_new(o, "stale_reason",
                                    json_string(sampler_freshness_name(rd.fresh)));
        if (rd.ts_us) {
                json_object_set_new(o, "timestamp_us", json_integer(rd.ts_us));
                json_object_set_new(o, "age_seconds", json_real((double)rd.age_us / 1e6));
        }
        return o;
}

static json_t *gpu_json(api *a, const sampler_gpu *g)
{
        field_value total;
        json_t *o = json_pack("{s:i,s:s,s:s,s:s,s:s,s:s,s:s}", "index", g->index, "uuid",
                              g->id.uuid, "name", g->id.name, "serial", g->id.serial, "pci_bus_id",
                              g->id.pci_bus_id, "vbios_version", g->id.vbios, "state",
                              !g->up     ? "lost"
                              : g->stuck ? "unresponsive"
                                         : "up");

        if (g->id.minor >= 0)
                json_object_set_new(o, "minor_number", json_integer(g->id.minor));
        if (cache_latest(a->opt.cache, g->index, FLD_FB_TOTAL, &total, NULL) == 0 &&
            total.status == 0)
                json_object_set_new(o, "memory_total_bytes", json_integer(total.i * 1048576));
        if (g->last_seen_us)
                json_object_set_new(o, "last_seen_us", json_integer(g->last_seen_us));
        if (!g->up && g->lost_since_us)
                json_object_set_new(o, "lost_since_us", json_integer(g->lost_since_us));
        return o;
}

static const char *query(request *r, const char *key)
{
        return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, key);
}

/* Parse "A,B,150" into catalog entries. Returns count or -EINVAL with the bad name in bad. */
static int parse_field_list(const char *s, const field_meta **out, size_t max, char *bad,
                            size_t badlen)
{
        char tmp[1024];
        char *save = NULL, *tok;
        int n = 0;

        if (strlen(s) >= sizeof(tmp)) {
                snprintf(bad, badlen, "(list too long)");
                return -EINVAL;
        }
        snprintf(tmp, sizeof(tmp), "%s", s);
        for (tok = strtok_r(tmp, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
                const field_meta *m = field_by_name(tok);
                if (!m || (size_t)n >= max) {
                        snprintf(bad, badlen, "%s", tok);
                        return -EINVAL;
                }
                out[n++] = m;
        }
        return n;
}

enum MHD_Result h_healthz(request *r)
{
        return api_reply_json(r, 200, json_pack("{s:s}", "status", "ok"));
}

/* dcgm-exporter's probe, as its Helm chart's liveness and readiness probes read it: 200 "OK"
 * once the server answers (its registry may still be loading; that is not a reason to restart
 * the pod). Open like /healthz. */
enum MHD_Result h_dcgm_health(request *r)
{
        return api_reply_plain(r, "OK");
}

enum MHD_Result h_readyz(request *r)
{
        if (sampler_ready(r->api->opt.sampler))
                return api_reply_json(r, 200, json_pack("{s:s}", "status", "ready"));
        return api_reply_json(r, 503, json_pack("{s:s}", "status", "starting"));
}

enum MHD_Result h_gpus(request *r)
{
        api *a = r->api;
        const field_meta *want[MAX_QUERY_FIELDS];
        const char *fields = query(r, "fields");
        const char *driver, *nvml;
        int nwant = -1;
        json_t *arr = json_array();
        unsigned n = sampler_gpu_count(a->opt.sampler);

        if (fields) {
                char bad[128];
                nwant = parse_field_list(fields, want, MAX_QUERY_FIELDS, bad, sizeof(bad));
                if (nwant < 0) {
                        json_decref(arr);
                        return api_reply_errno(r, -EINVAL, "unknown field '%s'", bad);
                }
                /* a profiling field asked for is read from the next slow sweep on */
                for (int k = 0; k < nwant; k++)
                        sampler_profiling_demand(a->opt.sampler, want[k]->id);
        }
        for (unsigned i = 0; i < n; i++) {
                sampler_gpu g;
                json_t *o;
                if (sampler_gpu_get(a->opt.sampler, i, &g) < 0)
                        continue;
                o = gpu_json(a, &g);
                if (nwant >= 0) {
                        json_t *fa = json_array();
                        for (int k = 0; k < nwant; k++) {
                                json_t *f = field_json(a, i, want[k], g.up);
                                /* not watched: say so rather than drop it; a profiling
                                 * field just asked for is read from the next slow sweep */
                                if (!f)
                                        f = json_pack(
                                            "{s:i,s:s,s:s,s:s}", "id", want[k]->id, "name",
                                            want[k]->sym, "unit", want[k]->unit, "status",
                                            sampler_profiling_wanted(a->opt.sampler, want[k]->id)
                                                ? "pending"
                                                : "not_watched");
                                json_array_append_new(fa, f);
                        }
                        json_object_set_new(o, "fields", fa);
                }
                json_array_append_new(arr, o);
        }
        sampler_versions(a->opt.sampler, &driver, &nvml);
        return api_reply_json(r, 200,
                              json_pack("{s:i,s:s,s:s,s:o,s:I}", "count", (int)n, "driver_version",
                                        driver, "nvml_version", nvml, "gpus", arr, "timestamp_us",
                                        (json_int_t)time_real_us()));
}

enum MHD_Result h_gpu(request *r)
{
        api *a = r->api;
        unsigned idx;
        sampler_gpu g;
        json_t *o, *fa;

        if (sampler_gpu_find(a->opt.sampler, r->seg[0], &idx) < 0 ||
            sampler_gpu_get(a->opt.sampler, idx, &g) < 0)
                return api_reply_errno(r, -ENODEV, "no GPU '%s'", r->seg[0]);
        o = gpu_json(a, &g);
        fa = json_array();
        for (size_t i = 0; i < field_count(); i++) {
                const field_meta *m = field_at(i);
                json_t *f;
                if (m->type == FT_STR)
                        continue;
                f = field_json(a, idx, m, g.up);
                if (f)
                        json_array_append_new(fa, f);
        }
        json_object_set_new(o, "fields", fa);
        return api_reply_json(r, 200, o);
}

enum MHD_Result h_history(request *r)
{
        api *a = r->api;
        const char *fname = query(r, "field"), *since_s = query(r, "since"),
                   *max_s = query(r, "max");
        _cleanup_free_ cache_point *pts = NULL;
        const field_meta *m;
        unsigned idx;
        sampler_gpu g;
        double since = 300;
        long max = 3600;
        size_t n = 0;
        json_t *arr;
        char *end;
        int rr;

        if (sampler_gpu_find(a->opt.sampler, r->seg[0], &idx) < 0 ||
            sampler_gpu_get(a->opt.sampler, idx, &g) < 0)
                return api_reply_errno(r, -ENODEV, "no GPU '%s'", r->seg[0]);
        if (!fname)
                return api_reply_errno(r, -EINVAL, "missing query parameter 'field'");
        m = field_by_name(fname);
        if (!m || m->type == FT_STR)
                return api_reply_errno(r, -EINVAL, "unknown field '%s'", fname);
        sampler_profiling_demand(a->opt.sampler, m->id);
        if (since_s) {
                since = strtod(since_s, &end);
                if (*end || !(since > 0) || since > 86400.0 * 365)
                        return api_reply_errno(
                            r, -EINVAL, "'since' must be a number of seconds, got '%s'", since_s);
        }
        if (max_s) {
                max = strtol(max_s, &end, 10);
                if (*end || max < 1 || max > MAX_HISTORY_POINTS)
                        return api_reply_errno(r, -EINVAL, "'max' must be 1..%d, got '%s'",
                                               MAX_HISTORY_POINTS, max_s);
        }
        pts = calloc((size_t)max, sizeof(*pts));
        if (!pts)
                return api_reply_errno(r, -ENOMEM, "out of memory");
        rr = cache_history(a->opt.cache, idx, m->id, time_real_us() - (int64_t)(since * 1e6), pts,
                           (size_t)max, &n);
        if (rr == -ENOENT)
                return api_reply_errno(r, rr, "field '%s' is not collected", m->sym);
        if (rr < 0)
                return api_reply_errno(r, rr, "cannot read history: %s", strerror(-rr));
        arr = json_array();
        for (size_t i = 0; i < n; i++) {
                json_t *v;
                if (pts[i].v.status != 0)
                        continue; /* a gap, not a made-up value */
                v = value_json(m, &pts[i].v);
                if (!v)
                        continue;
                json_array_append_new(arr, json_pack("[I,o]", (json_int_t)pts[i].ts_us, v));
        }
        return api_reply_json(r, 200,
                              json_pack("{s:i,s:s,s:s,s:i,s:s,s:o}", "gpu", (int)idx, "uuid",
                                        g.id.uuid, "field", m->sym, "id", m->id, "unit", m->unit,
                                        "points", arr));
}

enum MHD_Result h_fields(request *r)
{
        json_t *arr = json_array();

        for (size_t i = 0; i < field_count(); i++) {
                const field_meta *m = field_at(i);
                json_t *o =
                    json_pack("{s:i,s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "id", m->id, "name", m->sym,
                              "dcgm_name", m->dcgm_name, "type", field_type_name(m->type), "kind",
                              field_kind_name(m->kind), "tier", field_tier_name(m->tier), "unit",
                              m->unit, "help", m->help);
                int64_t iv = sampler_interval_of(r->api->opt.sampler, m->id);
                json_object_set_new(o, "dcgm46_name",
                                    m->dcgm46_name ? json_string(m->dcgm46_name) : json_null());
                json_object_set_new(o, "native", m->native ? json_string(m->native) : json_null());
                if (iv >= 0)
                        json_object_set_new(o, "interval_us", json_integer(iv));
                json_array_append_new(arr, o);
        }
        return api_reply_json(r, 200, json_pack("{s:o}", "fields", arr));
}

static json_t *tier_json(const sampler_tier_stats *t)
{
        return json_pack("{s:f,s:I,s:I,s:f,s:I}", "interval_seconds", (double)t->interval_us / 1e6,
                         "sweeps", (json_int_t)t->sweeps, "late_sweeps", (json_int_t)t->late,
                         "last_duration_seconds", t->last_duration_s, "last_sweep_us",
                         (json_int_t)t->last_sweep_us);
}

enum MHD_Result h_status(request *r)
{
        api *a = r->api;
        sampler_stats st;
        cache_stats cs;
        const char *driver, *nvml;
        json_t *o;

        sampler_get_stats(a->opt.sampler, &st);
        cache_get_stats(a->opt.cache, &cs);
        sampler_versions(a->opt.sampler, &driver, &nvml);
        o = json_pack("{s:s,s:s,s:i,s:f,s:b,s:s,s:s,s:s,s:i,s:i,s:b}", "version", VIGIL_VERSION,
                      "hostname", a->hostname, "pid", (int)getpid(), "uptime_seconds",
                      (double)(time_real_us() - a->start_us) / 1e6, "simulated", a->opt.simulated,
                      "nvml_library", backend_library(a->opt.backend), "driver_version", driver,
                      "nvml_version", nvml, "gpu_count", (int)sampler_gpu_count(a->opt.sampler),
                      "gpus_up", (int)sampler_gpus_up(a->opt.sampler), "ready",
                      sampler_ready(a->opt.sampler));
        json_object_set_new(o, "tiers",
                            json_pack("{s:o,s:o}", "fast", tier_json(&st.tier[TIER_FAST]), "slow",
                                      tier_json(&st.tier[TIER_SLOW])));
        json_object_set_new(o, "events",
                            json_pack("{s:b,s:I}", "watching", st.events_supported, "received",
                                      (json_int_t)st.events));
        json_object_set_new(o, "cache",
                            json_pack("{s:I,s:I,s:I}", "bytes", (json_int_t)cs.bytes, "bytes_used",
                                      (json_int_t)cs.bytes_used, "samples",
                                      (json_int_t)cs.samples));
        json_object_set_new(o, "http", json_pack("{s:I}", "requests", (json_int_t)a->requests));
        {
                unsigned long long calls, cost_ns;
                if (backend_fake_stats(a->opt.backend, &calls, &cost_ns) == 0)
                        json_object_set_new(o, "fake_nvml",
                                            json_pack("{s:I,s:f}", "calls", (json_int_t)calls,
                                                      "cost_cpu_seconds", (double)cost_ns / 1e9));
        }
        json_object_set_new(o, "self", selfmetrics_json(a)); /* selfmetrics.c */
        /* No configuration here: status is open to readers (and to anyone without
         * authentication); the configuration is GET /api/v1/config, admin only, redacted. */
        return api_reply_json(r, 200, o);
}

enum MHD_Result h_inject(request *r)
{
        api *a = r->api;
        backend_injection req = {0};
        json_error_t jerr;
        json_t *body, *gpu, *v;
        char err[256] = "";
        int kinds = 0, rr;

        if (!backend_is_fake(a->opt.backend))
                return api_reply_errno(r, -ENOENT,
                                       "injection needs the fake NVML (vigild --simulate)");
        body = json_loadb(r->body.data ? r->body.data : "", r->body.len, JSON_REJECT_DUPLICATES,
                          &jerr);
        if (!body || !json_is_object(body)) {
                json_decref(body);
                return api_reply_errno(r, -EINVAL, "body must be a JSON object: %s",
                                       body ? "not an object" : jerr.text);
        }
        if ((v = json_object_get(body, "advance_s"))) {
                /* {"advance_s": S}: the fake's scenario clock moves S seconds ahead (tests). */
                if (!json_is_number(v) || json_number_value(v) < 0 ||
                    json_number_value(v) > 366.0 * 86400)
                        goto bad_value;
                req.kind = BACKEND_INJECT_ADVANCE;
                req.count = (long long)(json_number_value(v) * 1e6);
                rr = backend_inject(a->opt.backend, &req, err, sizeof(err));
                if (rr < 0) {
                        json_decref(body);
                        return api_reply_errno(r, -EINVAL, "injection refused: %s",
                                               err[0] ? err : strerror(-rr));
                }
                log_info("inject", "advanced the fake clock by %.3f s", json_number_value(v));
                return api_reply_json(r, 200, json_pack("{s:o}", "injected", body));
        }
        if ((v = json_object_get(body, "call"))) {
                /* {"call": "nvmlDeviceGetTemperature", "cost_us": N}: the modelled CPU cost of
                 * one NVML function from now on (adaptive collection tests). */
                json_t *cost = json_object_get(body, "cost_us");
                if (!json_is_string(v) || !json_is_integer(cost) || json_integer_value(cost) < 0 ||
                    json_integer_value(cost) > 60000000)
                        goto bad_value;
                req.kind = BACKEND_INJECT_CALL_COST;
                req.call = json_string_value(v);
                /* "*" sets the scale of every cost, in percent (docs/simulation.md); a function
                 * name its cost in microseconds (the fake counts ns) */
                req.count = strcmp(req.call, "*") ? json_integer_value(cost) * 1000
                                                  : json_integer_value(cost);
                rr = backend_inject(a->opt.backend, &req, err, sizeof(err));
                if (rr < 0) {
                        json_decref(body);
                        return api_reply_errno(r, -EINVAL, "injection refused: %s",
                                               err[0] ? err : strerror(-rr));
                }
                log_info("inject", "set the modelled cost of '%s' to %lld us", req.call,
                         (long long)json_integer_value(cost));
                return api_reply_json(r, 200, json_pack("{s:o}", "injected", body));
        }
        gpu = json_object_get(body, "gpu");
        if (!json_is_integer(gpu) || json_integer_value(gpu) < 0 ||
            json_integer_value(gpu) >= (json_int_t)sampler_gpu_count(a->opt.sampler)) {
                json_decref(body);
                return api_reply_errno(r, -EINVAL, "'gpu' must be a GPU index (0..%u)",
                                       sampler_gpu_count(a->opt.sampler) - 1);
        }
        req.gpu = (unsigned)json_integer_value(gpu);
        if ((v = json_object_get(body, "xid"))) {
                kinds++;
                if (!json_is_integer(v) || json_integer_value(v) <= 0 ||
                    json_integer_value(v) > 65535)
                        goto bad_value;
                req.kind = BACKEND_INJECT_XID;
                req.count = json_integer_value(v);
        }
        if ((v = json_object_get(body, "ecc_dbe")) || (v = json_object_get(body, "ecc_sbe"))) {
                kinds +=
                    json_object_get(body, "ecc_dbe") && json_object_get(body, "ecc_sbe") ? 2 : 1;
                if (!json_is_integer(v) || json_integer_value(v) <= 0 ||
                    json_integer_value(v) > 1000000)
                        goto bad_value;
                req.kind = json_object_get(body, "ecc_dbe") ? BACKEND_INJECT_ECC_DBE
                                                            : BACKEND_INJECT_ECC_SBE;
                req.count = json_integer_value(v);
        }
        if ((v = json_object_get(body, "lost"))) {
                kinds++;
                if (!json_is_boolean(v))
                        goto bad_value;
                req.kind = BACKEND_INJECT_LOST;
                req.count = json_is_true(v);
        }
        if ((v = json_object_get(body, "field"))) {
                const field_meta *m = NULL;
                json_t *val = json_object_get(body, "value"),
                       *clear = json_object_get(body, "clear");
                kinds++;
                if (json_is_string(v))
                        m = field_by_name(json_string_value(v));
                else if (json_is_integer(v) && json_integer_value(v) >= 0 &&
                         json_integer_value(v) <= 65535) /* DCGM field ids are 16-bit */
                        m = field_by_id((unsigned)json_integer_value(v));
                if (!m) {
                        json_decref(body);
                        return api_reply_errno(r, -EINVAL, "unknown field in 'field'");
                }
                req.field_id = m->id;
                if (json_is_true(clear)) {
                        req.kind = BACKEND_INJECT_FIELD_CLEAR;
                } else if (json_is_number(val)) {
                        req.kind = BACKEND_INJECT_FIELD;
                        req.value = json_number_value(val);
                } else {
                        json_decref(body);
                        return api_reply_errno(
                            r, -EINVAL, "'field' needs a numeric 'value' or \"clear\": true");
                }
        }
        if (kinds != 1) {
                json_decref(body);
                return api_reply_errno(
                    r, -EINVAL, "give exactly one of 'xid', 'field', 'ecc_dbe', 'ecc_sbe', 'lost'");
        }
        rr = backend_inject(a->opt.backend, &req, err, sizeof(err));
        if (rr < 0) {
                json_decref(body);
                /* the fake refused what the request asked: a bad request, unless the GPU is
                 * gone (404) */
                return api_reply_errno(r, rr == -ENODEV ? rr : -EINVAL, "injection refused: %s",
                                       err[0] ? err : strerror(-rr));
        }
        log_info("inject", "injected into GPU %u: kind %d", req.gpu, (int)req.kind);
        return api_reply_json(r, 200, json_pack("{s:o}", "injected", body));
bad_value:
        json_decref(body);
        return api_reply_errno(r, -EINVAL, "bad value in injection request");
}
