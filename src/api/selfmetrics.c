/* selfmetrics.c — self-monitoring families for /metrics and /api/v1/status, and the anomalies
 * endpoint. Everything here is read at render time (once per sweep) from counters other modules
 * keep cheaply: the logger's atomics, the backend's per-function NVML counters, the engine's
 * tier stats, /proc/self, and the HTTP table below. */
#include "selfmetrics.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "reply.h"
#include "backend/backend.h"
#include "common/log.h"
#include "common/macros.h"
#include "health/anomaly.h"

#define HTTP_MAX_ROUTES 48
#define HTTP_MAX_CODES  12
#define HTTP_BUCKETS    12
#define NVML_MAX_CALLS  48

static const double http_bounds[HTTP_BUCKETS] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
};

typedef struct route_stat {
        const char *route;                 /* static pattern; NULL = free */
        uint64_t count;                    /* requests */
        double sum;                        /* seconds */
        uint64_t buckets[HTTP_BUCKETS];    /* cumulative, le= http_bounds */
        unsigned codes[HTTP_MAX_CODES];    /* status codes seen */
        uint64_t per_code[HTTP_MAX_CODES]; /* requests per code */
        size_t n_codes;
} route_stat;

static pthread_mutex_t http_lock = PTHREAD_MUTEX_INITIALIZER;
static route_stat http[HTTP_MAX_ROUTES];

void selfmetrics_http_observe(const char *route, unsigned code, double seconds)
{
        route_stat *s = NULL;
        size_t c;

        if (!route)
                route = "unmatched";
        pthread_mutex_lock(&http_lock);
        for (size_t i = 0; i < HTTP_MAX_ROUTES && !s; i++)
                if (!http[i].route || !strcmp(http[i].route, route))
                        s = &http[i];
        if (!s) {
                s = &http[HTTP_MAX_ROUTES - 1];
                route = "other";
        }
        s->route = s->route ? s->route : route;
        s->count++;
        s->sum += seconds;
        for (int b = 0; b < HTTP_BUCKETS; b++)
                if (seconds <= http_bounds[b])
                        s->buckets[b]++;
        for (c = 0; c < s->n_codes && s->codes[c] != code; c++)
                ;
        if (c == s->n_codes && c < HTTP_MAX_CODES) {
                s->codes[c] = code;
                s->n_codes++;
        }
        if (c < HTTP_MAX_CODES)
                s->per_code[c]++;
        pthread_mutex_unlock(&http_lock);
}

/* ---- /proc ------------------------------------------------------------------------------ */

typedef struct proc_stats {
        double cpu_s;     /* user + system */
        double rss_bytes; /* resident set */
        double fds;       /* open file descriptors */
        double max_fds;   /* RLIMIT_NOFILE soft */
        double start_s;   /* seconds since boot at process start (unused when 0) */
} proc_stats;

static void read_proc(proc_stats *p)
{
        char line[1024];
        FILE *f;
        DIR *d;
        struct dirent *de;
        long tck = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);

        memset(p, 0, sizeof(*p));
        if ((f = fopen("/proc/self/stat", "re"))) {
                if (fgets(line, sizeof(line), f)) {
                        /* fields after the command (which may hold spaces) start after ')' */
                        const char *q = strrchr(line, ')');
                        unsigned long long ut = 0, st = 0;
                        if (q &&
                            sscanf(q + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
                                   &ut, &st) == 2 &&
                            tck > 0)
                                p->cpu_s = (double)(ut + st) / (double)tck;
                }
                fclose(f);
        }
        if ((f = fopen("/proc/self/statm", "re"))) {
                unsigned long long size = 0, res = 0;
                if (fscanf(f, "%llu %llu", &size, &res) == 2)
                        p->rss_bytes = (double)res * (double)page;
                fclose(f);
        }
        if ((d = opendir("/proc/self/fd"))) {
                while ((de = readdir(d)))
                        if (de->d_name[0] != '.')
                                p->fds++;
                p->fds--; /* the directory stream itself */
                closedir(d);
        }
        p->max_fds = (double)sysconf(_SC_OPEN_MAX);
}

/* ---- rendering -------------------------------------------------------------------------- */

/* HELP and TYPE (expo.c's rules: an OpenMetrics counter family drops _total). */
static void family(buf *b, bool om, const char *name, const char *type, const char *help)
{
        size_t nl = strlen(name);

        if (om && !strcmp(type, "counter") && nl > 6 && !strcmp(name + nl - 6, "_total"))
                nl -= 6;
        buf_printf(b, "# HELP %.*s %s\n# TYPE %.*s %s\n", (int)nl, name, help, (int)nl, name, type);
}

static const char *tier_name(int t)
{
        return t == TIER_FAST ? "fast" : "slow";
}

void selfmetrics_render(api *a, buf *b, bool om)
{
        static const char *const lv[] = {"debug", "info", "warn", "error"};
        backend_call_stat calls[NVML_MAX_CALLS];
        size_t nc = backend_call_stats(calls, NVML_MAX_CALLS);
        sampler_stats st;
        proc_stats p;

        family(b, om, "vigil_log_messages_total", "counter", "Log messages written, per level");
        for (int l = 0; l < 4; l++)
                buf_printf(b, "vigil_log_messages_total{level=\"%s\"} %llu\n", lv[l],
                           log_count((enum log_level)l));
        family(b, om, "vigil_log_dropped_total", "counter",
               "Log messages suppressed by the rate limiter or lost to a failed write");
        buf_printf(b, "vigil_log_dropped_total %llu\n", log_dropped());

        family(b, om, "vigil_nvml_calls_total", "counter",
               "NVML calls made by the sampler, per NVML function");
        for (size_t i = 0; i < nc; i++)
                buf_printf(b, "vigil_nvml_calls_total{call=\"%s\"} %llu\n", calls[i].call,
                           calls[i].calls);
        family(b, om, "vigil_nvml_call_duration_seconds_total", "counter",
               "Wall time spent inside NVML calls by the sampler, per NVML function");
        for (size_t i = 0; i < nc; i++)
                buf_printf(b, "vigil_nvml_call_duration_seconds_total{call=\"%s\"} %.9f\n",
                           calls[i].call, (double)calls[i].ns / 1e9);

        read_proc(&p);
        family(b, om, "vigil_process_cpu_seconds_total", "counter",
               "User and system CPU time of vigild");
        buf_printf(b, "vigil_process_cpu_seconds_total %.2f\n", p.cpu_s);
        family(b, om, "vigil_process_resident_memory_bytes", "gauge", "Resident memory of vigild");
        buf_printf(b, "vigil_process_resident_memory_bytes %.0f\n", p.rss_bytes);
        family(b, om, "vigil_process_open_fds", "gauge", "Open file descriptors of vigild");
        buf_printf(b, "vigil_process_open_fds %.0f\n", p.fds);
        family(b, om, "vigil_process_max_fds", "gauge", "File descriptor limit of vigild");
        buf_printf(b, "vigil_process_max_fds %.0f\n", p.max_fds);
        {
                cache_stats cs;
                cache_get_stats(a->opt.cache, &cs);
                family(b, om, "vigil_cache_bytes_per_sample", "gauge",
                       "Bytes of history used per sample held (compression ratio)");
                buf_printf(b, "vigil_cache_bytes_per_sample %.3f\n",
                           cs.samples ? (double)cs.bytes_used / (double)cs.samples : 0.0);
        }

        sampler_get_stats(a->opt.sampler, &st);
        family(b, om, "vigil_collection_configured_interval_seconds", "gauge",
               "Configured interval per tier (vigil_collection_interval_seconds is the effective "
               "one)");
        for (int t = TIER_FAST; t <= TIER_SLOW; t++)
                buf_printf(b, "vigil_collection_configured_interval_seconds{tier=\"%s\"} %g\n",
                           tier_name(t), (double)st.tier[t].configured_us / 1e6);
        family(b, om, "vigil_collection_stretched", "gauge",
               "1 while adaptive collection runs the tier slower than configured");
        for (int t = TIER_FAST; t <= TIER_SLOW; t++)
                buf_printf(b, "vigil_collection_stretched{tier=\"%s\"} %d\n", tier_name(t),
                           st.tier[t].stretch > 1.0 ? 1 : 0);
        family(b, om, "vigil_sampler_clock_steps_total", "counter",
               "Samples stored at an earlier sample's timestamp because the wall clock went back");
        buf_printf(b, "vigil_sampler_clock_steps_total %llu\n", (unsigned long long)st.clock_steps);
        family(b, om, "vigil_sampler_push_errors_total", "counter",
               "Samples the cache refused to store");
        buf_printf(b, "vigil_sampler_push_errors_total %llu\n", (unsigned long long)st.push_errors);

        pthread_mutex_lock(&http_lock);
        family(b, om, "vigil_http_requests_total", "counter",
               "HTTP requests answered, per route pattern and status code");
        for (size_t i = 0; i < HTTP_MAX_ROUTES && http[i].route; i++)
                for (size_t c = 0; c < http[i].n_codes; c++)
                        buf_printf(b, "vigil_http_requests_total{route=\"%s\",code=\"%u\"} %llu\n",
                                   http[i].route, http[i].codes[c],
                                   (unsigned long long)http[i].per_code[c]);
        family(b, om, "vigil_http_request_duration_seconds", "histogram",
               "Time to answer an HTTP request, per route pattern");
        for (size_t i = 0; i < HTTP_MAX_ROUTES && http[i].route; i++) {
                const route_stat *s = &http[i];
                for (int k = 0; k < HTTP_BUCKETS; k++)
                        buf_printf(b,
                                   "vigil_http_request_duration_seconds_bucket{route=\"%s\","
                                   "le=\"%g\"} %llu\n",
                                   s->route, http_bounds[k], (unsigned long long)s->buckets[k]);
                buf_printf(b,
                           "vigil_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} "
                           "%llu\n",
                           s->route, (unsigned long long)s->count);
                buf_printf(b, "vigil_http_request_duration_seconds_sum{route=\"%s\"} %.9f\n",
                           s->route, s->sum);
                buf_printf(b, "vigil_http_request_duration_seconds_count{route=\"%s\"} %llu\n",
                           s->route, (unsigned long long)s->count);
        }
        pthread_mutex_unlock(&http_lock);

        if (a->opt.anomaly) {
                /* sized by the GPUs present, not the maximum: this runs after every sweep */
                size_t cap =
                    (size_t)MAX(sampler_gpu_count(a->opt.sampler), 1) * ANOMALY_MAX_FIELDS * 2;
                anomaly_state *as = malloc(cap * sizeof(*as));
                size_t n = as ? anomaly_states(a->opt.anomaly, as, cap) : 0;
                family(b, om, "vigil_gpu_anomaly", "gauge",
                       "1 while a GPU reading is anomalous: kind=baseline against its own "
                       "learned baseline, kind=peer against the node's other GPUs");
                for (size_t i = 0; i < n; i++) {
                        sampler_gpu g;
                        /* a lost or hung GPU's readings are stale: so is a verdict on them */
                        if (sampler_gpu_get(a->opt.sampler, as[i].gpu, &g) < 0 || !g.up || g.stuck)
                                continue;
                        buf_printf(b, "vigil_gpu_anomaly{gpu=\"%u\",uuid=\"", as[i].gpu);
                        expo_escape(b, as[i].uuid);
                        buf_printf(b, "\",hostname=\"");
                        expo_escape(b, a->hostname);
                        buf_printf(b, "\",field=\"%s\",kind=\"%s\"} %d\n", as[i].field,
                                   as[i].kind == ANOMALY_PEER ? "peer" : "baseline",
                                   as[i].active ? 1 : 0);
                }
                free(as);
        }
}

json_t *selfmetrics_json(api *a)
{
        static const char *const lv[] = {"debug", "info", "warn", "error"};
        backend_call_stat calls[NVML_MAX_CALLS];
        size_t nc = backend_call_stats(calls, NVML_MAX_CALLS);
        json_t *o = json_object(), *logj = json_object(), *nv = json_object(), *h = json_object();
        json_t *tiers = json_object();
        sampler_stats st;
        proc_stats p;

        read_proc(&p);
        for (int l = 0; l < 4; l++)
                json_object_set_new(logj, lv[l], json_integer((json_int_t)log_count(l)));
        json_object_set_new(logj, "dropped", json_integer((json_int_t)log_dropped()));
        json_object_set_new(o, "log_messages", logj);
        for (size_t i = 0; i < nc; i++)
                json_object_set_new(nv, calls[i].call,
                                    json_pack("{s:I,s:f}", "calls", (json_int_t)calls[i].calls,
                                              "seconds", (double)calls[i].ns / 1e9));
        json_object_set_new(o, "nvml_calls", nv);
        json_object_set_new(o, "process",
                            json_pack("{s:f,s:I,s:I}", "cpu_seconds", p.cpu_s,
                                      "resident_memory_bytes", (json_int_t)p.rss_bytes, "open_fds",
                                      (json_int_t)p.fds));
        sampler_get_stats(a->opt.sampler, &st);
        for (int t = TIER_FAST; t <= TIER_SLOW; t++)
                json_object_set_new(
                    tiers, tier_name(t),
                    json_pack("{s:f,s:f,s:f,s:b}", "configured_interval_seconds",
                              (double)st.tier[t].configured_us / 1e6, "interval_seconds",
                              (double)st.tier[t].interval_us / 1e6, "stretch", st.tier[t].stretch,
                              "stretched", st.tier[t].stretch > 1.0));
        json_object_set_new(o, "adaptive", tiers);
        pthread_mutex_lock(&http_lock);
        for (size_t i = 0; i < HTTP_MAX_ROUTES && http[i].route; i++)
                json_object_set_new(h, http[i].route,
                                    json_pack("{s:I,s:f}", "requests", (json_int_t)http[i].count,
                                              "seconds", http[i].sum));
        pthread_mutex_unlock(&http_lock);
        json_object_set_new(o, "http_routes", h);
        if (a->opt.anomaly)
                json_object_set_new(o, "anomalies_active",
                                    json_integer(anomaly_active_count(a->opt.anomaly)));
        return o;
}

enum MHD_Result h_anomalies(request *r)
{
        const char *only = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "active");
        bool active_only = only && (!strcmp(only, "1") || !strcmp(only, "true"));
        anomaly *an = r->api->opt.anomaly;
        json_t *arr = json_array();
        anomaly_state *as;
        size_t n;

        if (!an)
                return api_reply_json(r, 200,
                                      json_pack("{s:b,s:o}", "enabled", 0, "anomalies", arr));
        as = calloc(ANOMALY_MAX_GPUS * ANOMALY_MAX_FIELDS * 2, sizeof(*as));
        if (!as) {
                json_decref(arr);
                return api_reply_errno(r, -ENOMEM, "out of memory");
        }
        n = anomaly_states(an, as, ANOMALY_MAX_GPUS * ANOMALY_MAX_FIELDS * 2);
        for (size_t i = 0; i < n; i++) {
                json_t *e;
                if (active_only && !as[i].active)
                        continue;
                e = json_pack("{s:i,s:s,s:s,s:s,s:b,s:b,s:f,s:f,s:f,s:f}", "gpu", (int)as[i].gpu,
                              "uuid", as[i].uuid, "field", as[i].field, "kind",
                              as[i].kind == ANOMALY_PEER ? "peer" : "baseline", "active",
                              as[i].active, "learned", as[i].learned, "value",
                              isfinite(as[i].value) ? as[i].value : 0.0, "expected",
                              isfinite(as[i].expected) ? as[i].expected : 0.0, "spread",
                              isfinite(as[i].spread) ? as[i].spread : 0.0, "score",
                              isfinite(as[i].score) ? as[i].score : 0.0);
                if (!e)
                        continue;
                if (as[i].kind == ANOMALY_BASELINE)
                        json_object_set_new(e, "samples", json_integer((json_int_t)as[i].samples));
                if (as[i].active)
                        json_object_set_new(e, "since", json_real((double)as[i].since_us / 1e6));
                json_array_append_new(arr, e);
        }
        free(as);
        return api_reply_json(r, 200,
                              json_pack("{s:b,s:I,s:o}", "enabled", 1, "active",
                                        (json_int_t)anomaly_active_count(an), "anomalies", arr));
}
